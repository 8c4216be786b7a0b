/**
 * The notifications inbox (/notifications): nudges (aggregated per day: "Ann,
 * Bob and 12 others nudged you to go live"), LIVEs of creators you nudged or
 * turned alerts on for, gifts, new followers and message requests, newest
 * first, page by page. Unread ones are marked; opening one marks it read and
 * goes where it points; "Mark all as read" clears the badge in every tab.
 *
 * Live: `notify:new` puts a new notification on top (an aggregated one that
 * grew moves up), `notify:unread {unread: 0}` (read in another tab) marks all
 * read; a reconnected socket reloads the first page.
 */

import { avatar } from './avatar.js';
import { shortTime } from './chat-order.js';
import { byTestId, el, hideError, setBusy, showError, sitePath } from './dom.js';
import { renderHeader } from './header.js';
import { currentUser, onSessionChange } from './session.js';
import { SharedSocket } from './socket.js';

const PAGE = 30;
const KIND_LABEL = {
  nudge: 'Nudge', live: 'LIVE', gift: 'Gift', follow: 'Follower', message_request: 'Message request',
};

const ui = Object.fromEntries(['notifications-signed-out', 'notifications', 'mark-all-read',
  'notification-list', 'notifications-empty', 'notifications-error', 'notifications-more',
].map((id) => [id, byTestId(id)]));

const socket = new SharedSocket();
/** The notifications shown, by id (the server's view: {id, kind, at, read, text, link, data}). */
let items = new Map();
let next = null;
let loads = 0;

function who(notification) {
  const data = notification.data ?? {};
  return data.actors?.[0] ?? data.user ?? null;
}

function row(n) {
  const person = who(n);
  const body = [
    person ? avatar(person, 'md') : el('span', { class: `toast-icon kind-${n.kind}`, 'aria-hidden': 'true' }),
    el('span', { class: 'notification-body' },
      el('span', { class: 'notification-text', testid: 'notification-text', text: n.text }),
      el('span', { class: 'notification-meta muted' },
        el('span', { class: 'badge', text: KIND_LABEL[n.kind] ?? n.kind }),
        el('time', { datetime: new Date(n.at * 1000).toISOString(), text: shortTime(new Date(n.at * 1000)) }))),
    n.read ? null : el('span', { class: 'unread-dot', testid: 'unread-dot', 'aria-label': 'unread' }),
  ];
  const path = sitePath(n.link);
  const link = el(path ? 'a' : 'button', {
    class: `notification${n.read ? '' : ' unread'}`, testid: 'notification',
    'data-id': n.id, 'data-kind': n.kind, href: path ?? undefined, type: path ? undefined : 'button',
    on: { click: (event) => open(event, n) },
  }, ...body);
  return el('li', {}, link);
}

function paint() {
  const sorted = [...items.values()].sort((a, b) => b.at - a.at);
  ui['notification-list'].replaceChildren(...sorted.map(row));
  ui['notifications-empty'].hidden = sorted.length > 0;
  ui['notifications-more'].hidden = !next;
  ui['mark-all-read'].disabled = !sorted.some((n) => !n.read);
}

async function load({ more = false } = {}) {
  const current = ++loads;
  hideError(ui['notifications-error']);
  try {
    const reply = await socket.ask('notify:list', { limit: PAGE, ...(more && next ? { before: next } : {}) });
    if (current !== loads) return;
    if (!more) items = new Map();
    for (const n of reply.notifications) items.set(n.id, n);
    next = reply.next;
    paint();
  } catch (err) {
    if (current === loads) showError(ui['notifications-error'], err);
  }
}

async function open(event, n) {
  if (!n.read) {
    event.preventDefault();
    items.set(n.id, { ...n, read: true });
    paint();
    try {
      await socket.ask('notify:read', { id: n.id });
    } catch {
      // Still open it; the next load shows the server's state.
    }
    const path = sitePath(n.link);
    if (path) location.href = path;
  }
}

ui['mark-all-read'].addEventListener('click', async () => {
  setBusy(ui['mark-all-read'], true);
  try {
    await socket.ask('notify:read_all', {});
    for (const [id, n] of items) items.set(id, { ...n, read: true });
  } catch (err) {
    showError(ui['notifications-error'], err);
  } finally {
    setBusy(ui['mark-all-read'], false);
    paint();
  }
});
ui['notifications-more'].addEventListener('click', () => load({ more: true }));

socket.on('notify:new', ({ notification }) => {
  items.set(notification.id, notification);
  paint();
});
socket.on('notify:unread', ({ unread }) => {
  if (unread !== 0) return;
  for (const [id, n] of items) items.set(id, { ...n, read: true });
  paint();
});
socket.on('connect', () => load()); // a new socket: what was missed is on the first page

function start() {
  const me = currentUser();
  ui['notifications-signed-out'].hidden = Boolean(me);
  ui.notifications.hidden = !me;
  if (me) load();
}

renderHeader(undefined, { socket });
onSessionChange(() => {
  socket.close();
  items = new Map();
  next = null;
  paint();
  start();
});
start();
