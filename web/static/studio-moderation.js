/**
 * The studio's moderation lists: who is banned or muted in your chats (each with
 * Unban or Unmute), and your moderators (each with Remove), with a search to add
 * one (user:search). Every right is the server's to check: these are its lists
 * (chat:restricted, chat:moderators) and its refusals.
 *
 * The banned-and-muted list reloads after each moderation from the studio's chat
 * (ChatPanel's onModerated), on the server's `chat:moderated` (a moderator's ban,
 * at once), on each new socket, and every REFRESH_MS while the page is visible
 * (a mute that ran out).
 *
 *   const lists = new ModerationLists(sharedSocket);
 *   lists.open();          // after the studio shows
 *   lists.refresh();       // something changed
 */

import { avatar } from './avatar.js';
import { byTestId, el, hideError, setBusy, showError } from './dom.js';
import { handle } from './format.js';
import { currentUser } from './session.js';

export const REFRESH_MS = 10000;
/** A search waits this long after the last key (one user:search per pause in typing). */
const SEARCH_PAUSE_MS = 200;

/** "until 14:05" (today) or "until Tue 09:30": when a mute ends, in local time. */
export function untilPhrase(seconds, now = Date.now()) {
  const end = new Date(seconds * 1000);
  const time = end.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const sameDay = end.toDateString() === new Date(now).toDateString();
  return sameDay ? `until ${time}` : `until ${end.toLocaleDateString([], { weekday: 'short' })} ${time}`;
}

export class ModerationLists {
  constructor(socket, root = document) {
    this.socket = socket;
    this.ui = Object.fromEntries(['studio-moderation', 'restricted-list', 'restricted-empty',
      'moderator-list', 'moderator-add', 'moderator-search', 'moderator-results', 'moderation-error']
      .map((id) => [id, byTestId(id, root)]));
    this.moderators = new Set();
    this.timer = null;
    this.searches = 0;
    this.pause = null;
    socket.on('connect', () => { if (this.opened) this.refresh(); });
    // A ban or mute in your chats, by you in another tab or by a moderator: at once.
    socket.on('chat:moderated', () => { if (this.opened) this.loadRestricted(); });
    this.ui['moderator-add'].addEventListener('submit', (event) => {
      event.preventDefault();
      this.search();
    });
    this.ui['moderator-search'].addEventListener('input', () => {
      clearTimeout(this.pause);
      this.pause = setTimeout(() => this.search(), SEARCH_PAUSE_MS);
    });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) this.refresh(); });
  }

  open() {
    this.opened = true;
    this.ui['studio-moderation'].hidden = false;
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => { if (!document.hidden) this.refresh(); }, REFRESH_MS);
  }

  async refresh() {
    await Promise.all([this.loadRestricted(), this.loadModerators()]);
  }

  row(user, status, action, label, testid) {
    return el('li', { class: 'people-row', testid, 'data-user': user.username },
      avatar(user, 'sm'),
      el('span', { class: 'people-name' },
        el('strong', { text: user.display_name }),
        el('span', { class: 'muted', text: ` ${handle(user.username)}` }),
        status ? el('span', { class: 'people-status', testid: `${testid}-status`, text: status }) : null),
      action ? el('button', { type: 'button', class: 'btn btn-ghost btn-sm', testid: `${testid}-action`,
        text: label, 'aria-label': `${label} ${user.display_name}`, on: { click: (e) => action(e.currentTarget) } }) : null);
  }

  async loadRestricted() {
    let reply;
    try {
      reply = await this.socket.ask('chat:restricted', {});
    } catch {
      return; // not reachable now: the next refresh tries again
    }
    const rows = reply.users.map(({ user, banned, muted_until: until }) => {
      const status = banned ? 'Banned' : `Muted ${untilPhrase(until)}`;
      const event = banned ? 'chat:unban' : 'chat:unmute';
      return this.row(user, status, (button) => this.act(button, event, { user_id: user.id }),
        banned ? 'Unban' : 'Unmute', 'restricted-row');
    });
    this.ui['restricted-list'].replaceChildren(...rows);
    this.ui['restricted-empty'].hidden = rows.length > 0;
  }

  async loadModerators() {
    let reply;
    try {
      reply = await this.socket.ask('chat:moderators', {});
    } catch {
      return;
    }
    this.moderators = new Set(reply.moderators.map((u) => u.id));
    this.ui['moderator-list'].replaceChildren(...reply.moderators.map((user) => this.row(
      user, '', (button) => this.act(button, 'chat:moderator', { user_id: user.id, on: false }),
      'Remove', 'moderator-row')));
  }

  async search() {
    const q = this.ui['moderator-search'].value.trim();
    const run = ++this.searches;
    if (!q) {
      this.ui['moderator-results'].replaceChildren();
      return;
    }
    let reply;
    try {
      reply = await this.socket.ask('user:search', { q, limit: 5 });
    } catch (err) {
      if (run === this.searches) showError(this.ui['moderation-error'], err);
      return;
    }
    if (run !== this.searches) return; // a later search answers instead
    hideError(this.ui['moderation-error']);
    const me = currentUser()?.id;
    this.ui['moderator-results'].replaceChildren(...reply.users
      .filter((user) => !this.moderators.has(user.id) && user.id !== me) // you moderate already
      .map((user) => this.row(user, '', async (button) => {
        if (await this.act(button, 'chat:moderator', { user_id: user.id, on: true })) {
          this.ui['moderator-search'].value = '';
          this.ui['moderator-results'].replaceChildren();
        }
      }, 'Make moderator', 'moderator-result')));
  }

  async act(button, event, payload) {
    hideError(this.ui['moderation-error']);
    setBusy(button, true);
    try {
      await this.socket.ask(event, payload);
      return true;
    } catch (err) {
      showError(this.ui['moderation-error'], err);
      return false;
    } finally {
      setBusy(button, false);
      await this.refresh();
    }
  }
}
