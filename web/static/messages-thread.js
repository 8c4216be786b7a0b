/**
 * One open conversation on the Messages page: its history page by page (newest
 * first, "Load earlier" for more), live messages in id order, the other side's
 * "Seen" and typing, a request's Accept / Delete / Report, and the composer.
 *
 *   const thread = new Thread(socket, { onChange });
 *   await thread.open({ conversation_id, with: user });
 *   thread.onMessage(message);     // a dm:message push for this conversation
 *   await thread.catchUp();        // after a reconnect
 *
 * Message text and shared cards go in through textContent only.
 */

import { avatar, paintAvatar } from './avatar.js';
import { idTime, newer, shortTime } from './chat-order.js';
import { byTestId, el, hideError, setBusy, showError } from './dom.js';
import { handle, profilePath } from './format.js';
import { currentUser } from './session.js';

export const PAGE = 30;
const TYPING_SEND_MS = 2000;    // at most one dm:typing every 2 s while typing
const TYPING_SHOW_MS = 3500;    // "is typing…" fades after this without news

const IDS = ['conversation', 'conversation-with', 'conversation-avatar', 'conversation-name',
  'conversation-handle', 'report-user', 'thread', 'load-earlier', 'message-list', 'seen',
  'typing', 'request-bar', 'request-text', 'request-accept', 'request-delete', 'request-report',
  'pending-note', 'report-form', 'report-title', 'report-reason', 'report-note', 'report-cancel',
  'conversation-error', 'composer', 'composer-input', 'composer-send'];

/** A shared profile or LIVE: a card that opens the profile (which plays the LIVE). */
export function card(shared) {
  const user = shared.user ?? {};
  if (shared.kind === 'nudge') { // a nudge, posted by the server (the creator's setting)
    return el('a', { class: 'dm-card nudge', href: profilePath(user.username ?? ''), testid: 'dm-nudge' },
      el('span', { class: 'nudge-bell', 'aria-hidden': 'true', text: '🔔' }),
      el('span', { class: 'dm-card-body' },
        el('strong', { text: `${user.display_name ?? ''} nudged you to go live` })));
  }
  const live = shared.kind === 'live';
  return el('a', { class: `dm-card${live ? ' live' : ''}`, href: profilePath(user.username ?? ''),
    testid: 'dm-card' },
  avatar(user, 'md'),
  el('span', { class: 'dm-card-body' },
    live ? el('span', { class: 'live-badge', text: 'Live' }) : null,
    el('strong', { text: user.display_name ?? '' }),
    el('span', { class: 'muted', text: live && shared.live ? shared.live.title : handle(user.username ?? '') }),
    el('span', { class: 'dm-card-cta', text: live ? 'Watch the LIVE' : 'View profile' })));
}

export class Thread {
  constructor(socket, { onChange = () => {} } = {}) {
    this.socket = socket;
    this.onChange = onChange;
    this.ui = Object.fromEntries(IDS.map((id) => [id, byTestId(id)]));
    /** {conversation_id, with, state, request, pending, seen}, while open. */
    this.current = null;
    /** Set by the page when this account may not send (under 16): no composer. */
    this.readOnly = false;
    this.oldest = null;
    this.newest = null;
    this.opens = 0;
    this.typingSent = 0;
    this.typingTimer = null;
    this.reportTarget = null;

    this.ui.composer.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    this.ui['composer-input'].addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    this.ui['composer-input'].addEventListener('input', () => this.typing());
    this.ui['load-earlier'].addEventListener('click', () => this.loadEarlier());
    this.ui['request-accept'].addEventListener('click', () => this.accept());
    this.ui['request-delete'].addEventListener('click', () => this.remove());
    this.ui['request-report'].addEventListener('click', () => this.askReport('message'));
    this.ui['report-user'].addEventListener('click', () => this.askReport('user'));
    this.ui['report-cancel'].addEventListener('click', () => { this.ui['report-form'].hidden = true; });
    this.ui['report-form'].addEventListener('submit', (event) => {
      event.preventDefault();
      this.report();
    });
    document.addEventListener('visibilitychange', () => this.markRead());
  }

  get id() {
    return this.current?.conversation_id ?? null;
  }

  me() {
    return currentUser()?.id ?? null;
  }

  // --- opening -----------------------------------------------------------------------------

  async open({ conversation_id: id, with: other }) {
    const run = ++this.opens;
    this.current = { conversation_id: id, with: other, state: 'new', request: false, pending: false, seen: null };
    this.oldest = this.newest = null;
    this.ui['message-list'].replaceChildren();
    this.ui.typing.hidden = true;
    this.ui['report-form'].hidden = true;
    hideError(this.ui['conversation-error']);
    this.paintHead(other);
    this.ui.conversation.hidden = false;
    let page;
    try {
      page = await this.socket.ask('dm:history', { conversation_id: id, limit: PAGE });
    } catch (err) {
      if (run === this.opens) showError(this.ui['conversation-error'], err);
      return;
    }
    if (run !== this.opens) return;
    this.current = { ...this.current, with: page.with, state: page.state, request: page.request,
      pending: page.pending, seen: page.seen };
    this.paintHead(page.with);
    for (const message of page.messages) this.insert(message);
    this.ui['load-earlier'].hidden = !page.more;
    this.paintState();
    this.scrollDown();
    this.markRead();
    this.ui['composer-input'].focus();
  }

  close() {
    this.opens += 1;
    this.current = null;
    this.ui.conversation.hidden = true;
  }

  /** After a reconnect: what came while away, page by page. */
  async catchUp() {
    const current = this.current;
    if (!current) return;
    if (!this.newest) {
      await this.open(current);
      return;
    }
    try {
      for (;;) {
        const page = await this.socket.ask('dm:history', { conversation_id: current.conversation_id,
          after: this.newest, limit: PAGE });
        if (this.current !== current) return;
        for (const message of page.messages) this.insert(message);
        Object.assign(current, { state: page.state, request: page.request, pending: page.pending, seen: page.seen });
        if (!page.more) break;
      }
      this.paintState();
      this.scrollDown();
      this.markRead();
    } catch (err) {
      showError(this.ui['conversation-error'], err);
    }
  }

  async loadEarlier() {
    const current = this.current;
    if (!current || !this.oldest) return;
    const thread = this.ui.thread;
    const fromBottom = thread.scrollHeight - thread.scrollTop;
    setBusy(this.ui['load-earlier'], true);
    try {
      const page = await this.socket.ask('dm:history', { conversation_id: current.conversation_id,
        before: this.oldest, limit: PAGE });
      if (this.current !== current) return;
      for (const message of page.messages) this.insert(message);
      this.ui['load-earlier'].hidden = !page.more;
      thread.scrollTop = thread.scrollHeight - fromBottom; // keep the reader's place
    } catch (err) {
      showError(this.ui['conversation-error'], err);
    } finally {
      setBusy(this.ui['load-earlier'], false);
    }
  }

  // --- live updates ---------------------------------------------------------------------

  onMessage(message) {
    if (!this.current) return;
    const stick = this.nearBottom();
    this.insert(message);
    if (message.from !== this.me()) this.ui.typing.hidden = true;
    this.paintSeen();
    if (stick || message.from === this.me()) this.scrollDown();
    this.markRead();
  }

  onConversation(summary) {
    if (!this.current || summary.conversation_id !== this.id) return;
    Object.assign(this.current, { state: summary.state, request: summary.request,
      pending: summary.pending, seen: summary.seen });
    this.paintState();
  }

  onSeen(messageId) {
    if (!this.current) return;
    this.current.seen = messageId;
    this.paintSeen();
  }

  onTyping() {
    if (!this.current) return;
    this.ui.typing.textContent = `${this.current.with.display_name} is typing…`;
    this.ui.typing.hidden = false;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => { this.ui.typing.hidden = true; }, TYPING_SHOW_MS);
  }

  // --- painting -------------------------------------------------------------------------

  paintHead(user) {
    if (!user) return;
    paintAvatar(this.ui['conversation-avatar'], user);
    this.ui['conversation-name'].textContent = user.display_name;
    this.ui['conversation-handle'].textContent = handle(user.username);
    this.ui['conversation-with'].href = profilePath(user.username);
  }

  paintState() {
    const { request, pending, with: other } = this.current;
    this.ui['request-bar'].hidden = !request;
    this.ui['request-text'].textContent = request
      ? `${other.display_name} wants to send you a message. They can't send more until you accept.` : '';
    this.ui.composer.hidden = request || this.readOnly;
    this.ui['pending-note'].textContent = pending
      ? `Message request sent. You can send more once ${other.display_name} accepts.` : '';
    this.ui['pending-note'].hidden = !pending;
    this.paintSeen();
  }

  paintSeen() {
    const seen = this.current?.seen;
    const mine = [...this.ui['message-list'].children].filter((n) => n.dataset.from === this.me());
    const last = mine.at(-1)?.dataset.id;
    const newestIsMine = this.ui['message-list'].lastElementChild?.dataset.from === this.me();
    this.ui.seen.hidden = !(seen && last && newestIsMine && !newer(last, seen));
  }

  /** Put a message in id order (once). */
  insert(message) {
    const list = this.ui['message-list'];
    if (list.querySelector(`[data-id="${CSS.escape(message.id)}"]`)) return;
    const mine = message.from === this.me();
    const node = el('li', { class: `dm-message${mine ? ' mine' : ''}`, testid: 'dm-message',
      'data-id': message.id, 'data-from': message.from, title: shortTime(idTime(message.id)) },
    message.text ? el('p', { class: 'dm-text', testid: 'dm-text', text: message.text }) : null,
    message.card ? card(message.card) : null);
    let before = null;
    for (let n = list.lastElementChild; n; n = n.previousElementSibling) {
      if (newer(message.id, n.dataset.id)) break;
      before = n;
    }
    list.insertBefore(node, before);
    if (!this.oldest || newer(this.oldest, message.id)) this.oldest = message.id;
    if (!this.newest || newer(message.id, this.newest)) this.newest = message.id;
  }

  nearBottom() {
    const t = this.ui.thread;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 60;
  }

  scrollDown() {
    this.ui.thread.scrollTop = this.ui.thread.scrollHeight;
  }

  // --- actions ---------------------------------------------------------------------------

  /** Tell the server we read up to the newest message (tab visible, theirs unread). */
  async markRead() {
    const current = this.current;
    if (!current || !this.newest || document.visibilityState !== 'visible') return;
    const last = this.ui['message-list'].lastElementChild;
    if (!last || last.dataset.from === this.me() || current.readUpTo === this.newest) return;
    current.readUpTo = this.newest;
    try {
      await this.socket.ask('dm:read', { conversation_id: current.conversation_id, message_id: this.newest });
      this.onChange({ type: 'read', conversation_id: current.conversation_id });
    } catch {
      current.readUpTo = null; // try again with the next message
    }
  }

  typing() {
    if (!this.current || this.current.state !== 'accepted') return;
    const now = Date.now();
    if (now - this.typingSent < TYPING_SEND_MS) return;
    this.typingSent = now;
    this.socket.ask('dm:typing', { conversation_id: this.current.conversation_id }).catch(() => {});
  }

  async send() {
    const current = this.current;
    const input = this.ui['composer-input'];
    if (!current || !input.value.trim()) return;
    hideError(this.ui['conversation-error']);
    setBusy(this.ui['composer-send'], true);
    try {
      const reply = await this.socket.ask('dm:send', { to: current.with.id, text: input.value });
      input.value = '';
      if (this.current === current) {
        this.insert(reply.message);
        current.state = reply.state;
        current.pending = reply.state === 'requested';
        this.paintState();
        this.scrollDown();
      }
      this.onChange({ type: 'sent', conversation_id: reply.conversation_id });
    } catch (err) {
      showError(this.ui['conversation-error'], err);
    } finally {
      setBusy(this.ui['composer-send'], false);
      input.focus();
    }
  }

  async accept() {
    const current = this.current;
    try {
      const { conversation } = await this.socket.ask('dm:accept', { conversation_id: current.conversation_id });
      this.onConversation(conversation);
      this.onChange({ type: 'accepted', conversation });
    } catch (err) {
      showError(this.ui['conversation-error'], err);
    }
  }

  async remove() {
    const current = this.current;
    try {
      await this.socket.ask('dm:delete', { conversation_id: current.conversation_id });
      this.onChange({ type: 'deleted', conversation_id: current.conversation_id });
    } catch (err) {
      showError(this.ui['conversation-error'], err);
    }
  }

  askReport(kind) {
    const theirs = [...this.ui['message-list'].children].filter((n) => n.dataset.from !== this.me());
    this.reportTarget = kind === 'message' && theirs.length
      ? { kind: 'message', message_id: theirs.at(-1).dataset.id } : { kind: 'user' };
    this.ui['report-title'].textContent = this.reportTarget.kind === 'message'
      ? 'Report this message' : `Report ${this.current.with.display_name}`;
    this.ui['report-form'].hidden = false;
    this.ui['report-reason'].focus();
  }

  async report() {
    const current = this.current;
    const target = this.reportTarget;
    const payload = { kind: target.kind, reason: this.ui['report-reason'].value,
      note: this.ui['report-note'].value };
    if (target.kind === 'message') {
      payload.conversation_id = current.conversation_id;
      payload.message_id = target.message_id;
    } else {
      payload.user_id = current.with.id;
    }
    setBusy(this.ui['report-form'].querySelector('[type=submit]'), true);
    try {
      await this.socket.ask('report:create', payload);
      this.ui['report-form'].hidden = true;
      this.ui['report-note'].value = '';
      this.ui['pending-note'].textContent = 'Thanks: your report was sent to our moderators.';
      this.ui['pending-note'].hidden = false;
    } catch (err) {
      showError(this.ui['conversation-error'], err);
    } finally {
      setBusy(this.ui['report-form'].querySelector('[type=submit]'), false);
    }
  }
}
