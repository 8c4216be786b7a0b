/**
 * The Messages page (/messages): conversations ordered by their latest message,
 * each with its last line and unread count; Message Requests in their own tab;
 * the open conversation (messages-thread.js); who may message you.
 *
 * Everything arrives live in every open tab: the server pushes to the user's
 * room (dm:message, dm:unread, dm:seen, dm:typing, dm:conversation,
 * dm:deleted); a reconnected socket reloads the list and catches the open
 * conversation up.
 *
 * URLs: /messages, /messages?c=<conversation id>, /messages?to=<username> (the
 * message button on a profile: opens, or starts, the conversation with them).
 */

import { api } from './api.js';
import { avatar } from './avatar.js';
import { idTime, shortTime } from './chat-order.js';
import { byTestId, el, hideError, showError } from './dom.js';
import { GoliveError, describeError } from './errors.js';
import { renderHeader } from './header.js';
import { Thread } from './messages-thread.js';
import { currentUser, onSessionChange } from './session.js';
import { SharedSocket } from './socket.js';

const LIST_PAGE = 30;

const ui = Object.fromEntries(['messages-signed-out', 'messages', 'tab-inbox', 'tab-requests',
  'requests-count', 'conversation-list', 'conversations-empty', 'conversations-more',
  'list-error', 'dm-policy', 'dm-policy-note', 'conversation', 'conversation-back',
  'conversation-placeholder', 'dm-refusal'].map((id) => [id, byTestId(id)]));

const socket = new SharedSocket();
const thread = new Thread(socket, { onChange });
let me = currentUser();
/** 'inbox' or 'requests'. */
let box = 'inbox';
/** The rows shown, by conversation id: the server's summaries. */
let rows = new Map();
let more = false;
let loads = 0;

// --- the list -------------------------------------------------------------------------

function preview(summary) {
  const last = summary.last;
  if (!last) return summary.pending ? 'Request sent' : 'No messages yet';
  return `${last.from === me?.id ? 'You: ' : ''}${last.text}`;
}

function row(summary) {
  const open = summary.conversation_id === thread.id;
  const tag = summary.request ? 'Request' : summary.pending ? 'Pending' : '';
  return el('li', {},
    el('button', { type: 'button', class: `conversation-row${summary.unread ? ' unread' : ''}${open ? ' open' : ''}`,
      testid: 'conversation-row', 'data-conversation': summary.conversation_id,
      on: { click: () => openConversation(summary) } },
    avatar(summary.with, 'md'),
    el('span', { class: 'row-body' },
      el('span', { class: 'row-top' },
        el('strong', { class: 'row-name', testid: 'row-name', text: summary.with.display_name }),
        tag ? el('span', { class: 'badge', text: tag }) : null,
        el('span', { class: 'row-time muted', text: summary.last ? shortTime(idTime(summary.last.id)) : '' })),
      el('span', { class: 'row-last', testid: 'row-last', text: preview(summary) })),
    summary.unread ? el('span', { class: 'count-pill', testid: 'row-unread', text: String(summary.unread) }) : null));
}

function paintList() {
  const sorted = [...rows.values()].sort((a, b) => b.updated_at - a.updated_at);
  ui['conversation-list'].replaceChildren(...sorted.map(row));
  ui['conversations-empty'].hidden = sorted.length > 0;
  ui['conversations-empty'].textContent = box === 'inbox'
    ? 'No conversations yet. Message someone from their profile.'
    : 'No message requests. Messages from people you don\'t follow land here.';
  ui['conversations-more'].hidden = !more;
}

function paintRequests(count) {
  ui['requests-count'].textContent = String(count);
  ui['requests-count'].hidden = !count;
}

async function loadList({ append = false } = {}) {
  const run = ++loads;
  hideError(ui['list-error']);
  const payload = { limit: LIST_PAGE };
  if (append && rows.size) payload.before = Math.min(...[...rows.values()].map((r) => r.updated_at));
  try {
    const reply = await socket.ask(box === 'inbox' ? 'dm:list' : 'dm:requests', payload);
    if (run !== loads) return;
    if (!append) rows = new Map();
    for (const summary of reply.conversations) rows.set(summary.conversation_id, summary);
    more = reply.more;
    if (reply.unread) paintRequests(reply.unread.requests);
    paintList();
  } catch (err) {
    if (run === loads) showError(ui['list-error'], err);
  }
}

function belongsHere(summary) {
  return box === 'requests' ? summary.request : !summary.request;
}

/** A conversation changed (a push, or our own action): place it where it belongs now. */
function upsert(summary) {
  if (belongsHere(summary)) rows.set(summary.conversation_id, summary);
  else rows.delete(summary.conversation_id);
  paintList();
}

function selectTab(next) {
  box = next;
  ui['tab-inbox'].setAttribute('aria-selected', String(next === 'inbox'));
  ui['tab-requests'].setAttribute('aria-selected', String(next === 'requests'));
  loadList();
}

// --- the open conversation -----------------------------------------------------------------

function setUrl(conversationId) {
  const url = conversationId ? `/messages?c=${conversationId}` : '/messages';
  if (location.pathname + location.search !== url) history.replaceState(null, '', url);
}

async function openConversation(summary) {
  ui.messages.dataset.view = 'conversation';
  ui['conversation-placeholder'].hidden = true;
  setUrl(summary.conversation_id);
  const opening = thread.open(summary);
  paintList();
  await opening;
}

function closeConversation() {
  thread.close();
  ui.messages.dataset.view = 'list';
  ui['conversation-placeholder'].hidden = false;
  setUrl(null);
  paintList();
}

/** /messages?to=username: the conversation with them (new if there is none yet). */
async function openWith(username) {
  try {
    const { user } = await socket.ask('profile:get', { username });
    if (user.id === me.id) return;
    const id = [user.id, me.id].sort().join('');
    await openConversation(rows.get(id) ?? { conversation_id: id, with: user });
  } catch (err) {
    showError(ui['list-error'], err);
  }
}

async function openFromUrl() {
  const params = new URLSearchParams(location.search);
  const to = params.get('to');
  const id = params.get('c');
  if (to) {
    await openWith(to);
  } else if (id && /^[0-9a-f]{32}$/.test(id)) {
    const other = id.slice(0, 16) === me.id ? id.slice(16) : id.slice(0, 16);
    await openConversation(rows.get(id) ?? { conversation_id: id, with: { id: other, display_name: '', username: '' } });
  }
}

function onChange(change) {
  if (change.type === 'deleted') {
    rows.delete(change.conversation_id);
    closeConversation();
  } else if (change.type === 'accepted') {
    upsert(change.conversation);
  } else if (change.type === 'read' && rows.has(change.conversation_id)) {
    rows.get(change.conversation_id).unread = 0;
    paintList();
  }
}

// --- pushes ------------------------------------------------------------------------------

socket.on('dm:message', ({ conversation, message }) => {
  if (conversation.conversation_id === thread.id) thread.onMessage(message);
  upsert(conversation);
});
socket.on('dm:conversation', ({ conversation }) => {
  upsert(conversation);
  thread.onConversation(conversation);
});
socket.on('dm:unread', ({ requests, conversation_id: id, unread }) => {
  paintRequests(requests);
  if (id && rows.has(id)) {
    rows.get(id).unread = unread;
    paintList();
  }
});
socket.on('dm:seen', ({ conversation_id: id, message_id: messageId }) => {
  if (id === thread.id) thread.onSeen(messageId);
  if (rows.has(id)) rows.get(id).seen = messageId;
});
socket.on('dm:typing', ({ conversation_id: id }) => {
  if (id === thread.id) thread.onTyping();
});
socket.on('dm:deleted', ({ conversation_id: id }) => {
  rows.delete(id);
  if (id === thread.id) closeConversation();
  else paintList();
});
// A new socket after a drop: whatever came meanwhile.
socket.on('connect', () => {
  loadList();
  thread.catchUp();
});

// --- settings ------------------------------------------------------------------------------

async function loadSettings() {
  try {
    ui['dm-policy'].value = (await socket.ask('settings:get', {})).dm_policy;
  } catch {
    // The select keeps its first option; saving will tell if the server is away.
  }
}

ui['dm-policy'].addEventListener('change', async () => {
  const note = ui['dm-policy-note'];
  try {
    const { dm_policy: policy } = await socket.ask('settings:update', { dm_policy: ui['dm-policy'].value });
    ui['dm-policy'].value = policy;
    note.textContent = 'Saved.';
  } catch (err) {
    note.textContent = err.message;
  }
  note.hidden = false;
});

// --- start ---------------------------------------------------------------------------------

ui['tab-inbox'].addEventListener('click', () => selectTab('inbox'));
ui['tab-requests'].addEventListener('click', () => selectTab('requests'));
ui['conversations-more'].addEventListener('click', () => loadList({ append: true }));
ui['conversation-back'].addEventListener('click', closeConversation);

/**
 * Whether this account may send messages (/api/me `messages`: under 16 it may not).
 * If not, say so up front and show no composer (it would only refuse after typing);
 * conversations still read.
 */
async function checkMaySend() {
  let refusal = null;
  try {
    const { messages: verdict } = await api('/api/me');
    refusal = verdict && !verdict.ok ? GoliveError.fromPayload(verdict.error) : null;
  } catch {
    refusal = null; // unknown: a send will tell
  }
  thread.readOnly = Boolean(refusal);
  ui['dm-refusal'].textContent = refusal ? `${describeError(refusal)}. You can still read your messages.` : '';
  ui['dm-refusal'].hidden = !refusal;
  if (thread.current) thread.paintState();
}

async function start() {
  ui['messages-signed-out'].hidden = Boolean(me);
  ui.messages.hidden = !me;
  ui['dm-refusal'].hidden = true;
  if (!me) return;
  await Promise.all([loadList(), checkMaySend()]);
  await Promise.all([openFromUrl(), loadSettings()]);
}

renderHeader(undefined, { socket });
onSessionChange((user) => {
  if ((user?.id ?? null) === (me?.id ?? null)) return;
  me = user;
  socket.close();
  thread.close();
  rows = new Map();
  paintList();
  start();
});
start();
