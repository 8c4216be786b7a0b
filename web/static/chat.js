/**
 * The live chat under the video: the last lines on join, new ones as the server
 * pushes them (`chat:messages`, a batch with the id delivered before it as
 * `prev`), and a box to send. The creator and the moderators they appointed
 * also get moderation, shown on every line (not only on hover: phones have
 * none): delete a line, mute its author for a chosen time, ban them after a
 * second tap to confirm; the creator also appoints moderators from a line, and
 * sets slow mode and a keyword filter. `onModerated` (an option) hears each
 * moderation done, so the studio's banned-and-muted list follows.
 *
 * Order and gaps: lines are shown in id order, each once. A batch whose `prev`
 * is newer than the last id shown means lines were missed (a slow connection,
 * a reconnect); the panel then asks chat:history {after: last id} for exactly
 * those, and applies pushes only after that.
 *
 *   const chat = new ChatPanel(sharedSocket);
 *   chat.open(live, { creator: false });   // after room:join (again after a rejoin)
 *   chat.close();                          // the live ended, another profile
 *
 * User text only ever goes in through textContent.
 */

import { newer } from './chat-order.js';
import { byTestId, el, hideError, setBusy, showError } from './dom.js';
import { ErrorCode } from './errors.js';
import { profilePath } from './format.js';
import { currentUser } from './session.js';

/** Lines kept on screen; older ones leave the DOM (the server keeps the history). */
export const MAX_LINES = 300;
/** The mute lengths offered: [seconds, label]. The server takes 1 s to 7 days. */
export const MUTE_CHOICES = [[60, '1 min'], [300, '5 min'], [3600, '1 hour'], [86400, '24 hours']];
/** How long a first tap on Ban waits for the second that confirms it. */
const CONFIRM_MS = 5000;

const IDS = ['chat-panel', 'chat-list', 'chat-form', 'chat-input', 'chat-send', 'chat-error',
  'chat-notice', 'chat-tools', 'chat-slow', 'chat-filter', 'chat-filter-save', 'chat-count'];

export class ChatPanel {
  constructor(socket, root = byTestId('chat-panel'), { onModerated = () => {} } = {}) {
    this.socket = socket;
    this.onModerated = onModerated;
    /** True when the creator appointed this user a moderator of this live's chats. */
    this.moderator = false;
    /** id -> item of the lines on screen, to draw their tools again when the role changes. */
    this.items = new Map();
    this.ui = Object.fromEntries(IDS.map((id) => [id, id === 'chat-panel' ? root : byTestId(id, root)]));
    /** {live_id, creator_id}, while open. */
    this.live = null;
    this.creator = false;
    this.last = null;          // newest id applied; null until the first history answer
    this.early = [];           // batches that came before it
    this.catching = null;      // the catch-up in flight
    this.opens = 0;

    socket.on('chat:messages', (batch) => this.onBatch(batch));
    socket.on('chat:settings', ({ live_id: id, slow_mode: slow }) => {
      if (id === this.live?.live_id) this.paintSlowMode(slow);
    });
    socket.on('chat:muted', ({ creator_id: creator, until }) => {
      if (creator === this.live?.creator_id) this.paintMuted(until);
    });
    socket.on('chat:moderator', ({ creator_id: creator, moderator }) => {
      if (creator !== this.live?.creator_id || this.creator) return;
      this.moderator = Boolean(moderator);
      this.notice(moderator ? 'You are now a moderator of this chat.' : 'You are no longer a moderator of this chat.');
      this.redraw();
    });
    socket.on('chat:banned', ({ creator_id: creator }) => {
      if (creator !== this.live?.creator_id) return;
      this.notice('The creator removed you from this LIVE and its chat.');
      this.ui['chat-form'].hidden = true;
    });
    this.ui['chat-form'].addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    this.ui['chat-input'].addEventListener('input', () => this.count());
    this.ui['chat-slow'].addEventListener('change', () => this.saveSettings({
      slow_mode: Number(this.ui['chat-slow'].value) }));
    this.ui['chat-filter-save'].addEventListener('click', () => this.saveSettings({
      filter_words: this.ui['chat-filter'].value.split(',').map((w) => w.trim()).filter(Boolean) }));
  }

  /** Show a live's chat; opening the same live again only catches up (a rejoin). */
  async open(live, { creator = false } = {}) {
    if (this.live?.live_id === live.live_id && this.last !== null) {
      this.creator = creator;
      this.ui['chat-panel'].hidden = false;
      await this.catchUp();
      return;
    }
    const run = ++this.opens;
    this.live = { live_id: live.live_id, creator_id: live.creator_id };
    this.creator = creator;
    this.moderator = false;
    this.last = null;
    this.early = [];
    this.items.clear();
    this.ui['chat-list'].replaceChildren();
    this.ui['chat-panel'].hidden = false;
    this.ui['chat-form'].hidden = false;
    this.ui['chat-tools'].hidden = !creator;
    this.notice('');
    hideError(this.ui['chat-error']);
    let reply;
    try {
      reply = await this.socket.ask('chat:history', { live_id: live.live_id });
    } catch (err) {
      if (run !== this.opens) return;
      showError(this.ui['chat-error'], err);
      return;
    }
    if (run !== this.opens) return;
    this.moderator = Boolean(reply.you?.moderator);
    this.paintRole();
    for (const item of reply.items) this.render(item);
    this.last = reply.last;
    this.paintSettings(reply.settings);
    this.paintMuted(reply.you?.muted_until ?? 0);
    const early = this.early;
    this.early = [];
    for (const batch of early) this.onBatch(batch);
    this.scrollDown(true);
  }

  close() {
    this.opens += 1;
    this.live = null;
    this.last = null;
    this.early = [];
    this.ui['chat-panel'].hidden = true;
    this.ui['chat-list'].replaceChildren();
    this.items.clear();
  }

  /** Creator or moderator: the tools show on every line. */
  get moderating() {
    return this.creator || this.moderator;
  }

  paintRole() {
    this.ui['chat-panel'].classList.toggle('moderating', this.moderating);
    this.ui['chat-panel'].dataset.role = this.creator ? 'creator' : this.moderator ? 'moderator' : 'viewer';
  }

  /** Draw every line again (its tools follow the role). */
  redraw() {
    this.paintRole();
    const list = this.ui['chat-list'];
    const stick = this.nearBottom();
    const items = [...this.items.values()];
    list.replaceChildren();
    this.items.clear();
    for (const item of items) this.render(item);
    this.scrollDown(stick);
  }

  // --- receiving ----------------------------------------------------------------------

  onBatch(batch) {
    if (!this.live || batch?.live_id !== this.live.live_id) return;
    if (this.last === null || this.catching) {
      this.early.push(batch);
      return;
    }
    if (newer(batch.prev, this.last)) {
      this.catchUp(); // lines between our last and this batch never reached us
      return;
    }
    this.apply(batch.items);
  }

  apply(items) {
    const stick = this.nearBottom();
    for (const item of items) {
      if (!newer(item.id, this.last)) continue; // already shown
      this.last = item.id;
      if (item.kind === 'delete') this.remove(item.target);
      else this.render(item);
    }
    this.scrollDown(stick);
  }

  /** Ask for everything after the last id shown, page by page; then replay held batches. */
  catchUp() {
    if (this.catching || !this.live || this.last === null) return this.catching;
    const live = this.live;
    this.catching = (async () => {
      try {
        for (;;) {
          const reply = await this.socket.ask('chat:history', { live_id: live.live_id, after: this.last });
          if (this.live !== live) return;
          this.apply(reply.items);
          if (!reply.more) break;
        }
      } catch (err) {
        if (this.live === live) showError(this.ui['chat-error'], err);
      } finally {
        this.catching = null;
      }
      const held = this.early;
      this.early = [];
      for (const batch of held) this.onBatch(batch);
    })();
    return this.catching;
  }

  // --- painting -----------------------------------------------------------------------

  render(item) {
    const list = this.ui['chat-list'];
    let node;
    if (item.kind === 'system') {
      node = el('li', { class: 'chat-line chat-system', testid: 'chat-system', 'data-id': item.id,
        text: item.text });
    } else {
      const user = item.user ?? {};
      const mine = user.id && user.id === this.myId();
      // A moderator has no tools on the creator's lines (the server refuses them too).
      const fromCreator = user.id === this.live?.creator_id;
      const tools = mine ? null
        : this.moderating && !(this.moderator && fromCreator) ? this.tools(item) : this.reportTool(item);
      node = el('li', { class: `chat-line${mine ? ' mine' : ''}`, testid: 'chat-message', 'data-id': item.id,
        'data-user': user.id ?? '' },
      el('a', { class: 'chat-name', testid: 'chat-name', href: profilePath(user.username ?? ''),
        text: user.display_name ?? '' }),
      el('span', { class: 'chat-text', testid: 'chat-text', text: item.text }),
      tools);
    }
    this.items.set(item.id, item);
    list.append(node);
    while (list.children.length > MAX_LINES) {
      this.items.delete(list.firstElementChild.dataset.id);
      list.firstElementChild.remove();
    }
  }

  /** Delete, Mute (a chosen time), Ban (tap twice), and for the creator, Make moderator. */
  tools(item) {
    const user = item.user;
    const name = user.display_name;
    const scope = this.creator ? {} : { creator_id: this.live.creator_id };
    const whose = this.creator ? 'your' : 'these';
    const button = (label, testid, fn, title = label) => el('button', { type: 'button',
      class: 'chat-tool', testid, title, 'aria-label': `${title} (${name})`, text: label,
      on: { click: fn } });
    const mute = el('select', { class: 'chat-tool', testid: 'chat-mute',
      'aria-label': `Mute ${name} for…` },
    el('option', { value: '', text: 'Mute…' }),
    ...MUTE_CHOICES.map(([seconds, label]) => el('option', { value: String(seconds), text: label })));
    mute.addEventListener('change', async () => {
      const seconds = Number(mute.value);
      if (!seconds) return;
      const label = MUTE_CHOICES.find(([s]) => s === seconds)?.[1] ?? `${seconds} s`;
      await this.moderate('chat:mute', { user_id: user.id, seconds, ...scope },
        `${name} is muted for ${label}.`);
      mute.value = '';
    });
    let armed = null;
    const ban = button('Ban', 'chat-ban', () => {
      if (!armed) { // the first tap asks; the second, within CONFIRM_MS, bans
        ban.textContent = 'Tap again to ban';
        ban.dataset.armed = 'true';
        armed = setTimeout(() => {
          armed = null;
          ban.textContent = 'Ban';
          delete ban.dataset.armed;
        }, CONFIRM_MS);
        return;
      }
      clearTimeout(armed);
      armed = null;
      ban.textContent = 'Ban';
      delete ban.dataset.armed;
      this.moderate('chat:ban', { user_id: user.id, ...scope },
        `${name} is banned from ${whose} LIVEs. Unban them from the banned list.`);
    });
    return el('span', { class: 'chat-tools-inline' },
      button('Delete', 'chat-delete', () => this.moderate('chat:delete',
        { live_id: this.live.live_id, message_id: item.id })),
      mute, ban,
      this.creator ? button('Mod', 'chat-make-mod', () => this.moderate('chat:moderator',
        { user_id: user.id }, `${name} is now a moderator: they can delete, mute and ban in your LIVEs.`),
      'Make moderator') : null);
  }

  /** Viewers report a line: pick a reason, and the server keeps a copy for moderators. */
  reportTool(item) {
    const reasons = [['spam', 'Spam'], ['harassment', 'Harassment'], ['hate', 'Hate'],
      ['nudity', 'Nudity'], ['violence', 'Violence'], ['scam', 'Scam'], ['other', 'Other']];
    const select = el('select', { class: 'chat-tool', testid: 'chat-report-reason',
      'aria-label': 'Why are you reporting this?' },
    el('option', { value: '', text: 'Report…' }),
    ...reasons.map(([value, text]) => el('option', { value, text })));
    select.addEventListener('change', async () => {
      if (!select.value) return;
      await this.moderate('report:create', { kind: 'chat', live_id: this.live.live_id,
        message_id: item.id, reason: select.value }, 'Thanks: your report was sent to our moderators.');
      select.value = '';
    });
    return el('span', { class: 'chat-tools-inline' }, select);
  }

  remove(id) {
    const node = this.ui['chat-list'].querySelector(`[data-id="${CSS.escape(id)}"]`);
    node?.remove();
    this.items.delete(id);
  }

  paintSettings(settings = {}) {
    this.paintSlowMode(settings.slow_mode ?? 0);
    if (this.creator) {
      const slow = this.ui['chat-slow'];
      if (![...slow.options].some((o) => Number(o.value) === settings.slow_mode)) {
        slow.append(el('option', { value: settings.slow_mode, text: `${settings.slow_mode} s` }));
      }
      slow.value = String(settings.slow_mode ?? 0);
      this.ui['chat-filter'].value = (settings.filter_words ?? []).join(', ');
    }
  }

  paintSlowMode(seconds) {
    this.slowMode = seconds;
    this.ui['chat-input'].placeholder = seconds && !this.creator
      ? `Slow mode: one message every ${seconds} s` : 'Say something nice…';
  }

  paintMuted(until) {
    const left = until - Date.now() / 1000;
    this.notice(left > 0 ? `You are muted in this chat for ${Math.ceil(left / 60)} more min.` : '');
  }

  notice(text) {
    this.ui['chat-notice'].textContent = text;
    this.ui['chat-notice'].hidden = !text;
  }

  count() {
    const n = this.ui['chat-input'].value.length;
    this.ui['chat-count'].textContent = n > 250 ? `${n}/300` : '';
  }

  nearBottom() {
    const list = this.ui['chat-list'];
    return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }

  scrollDown(stick) {
    if (stick) this.ui['chat-list'].scrollTop = this.ui['chat-list'].scrollHeight;
  }

  myId() {
    return currentUser()?.id ?? null;
  }

  // --- sending --------------------------------------------------------------------------

  async send() {
    const input = this.ui['chat-input'];
    const text = input.value;
    if (!this.live || !text.trim()) return;
    hideError(this.ui['chat-error']);
    setBusy(this.ui['chat-send'], true);
    try {
      await this.socket.ask('chat:send', { live_id: this.live.live_id, text });
      input.value = '';
      this.count();
      this.scrollDown(true); // our line arrives with the next push, in the room's order
    } catch (err) {
      this.showSendError(err);
    } finally {
      setBusy(this.ui['chat-send'], false);
      input.focus();
    }
  }

  showSendError(err) {
    const reason = err.details?.reason;
    if (err.code === ErrorCode.RATE_LIMITED && reason === 'slow_mode') {
      this.ui['chat-error'].textContent = `Slow mode is on: wait ${Math.ceil(err.retryAfter)} s.`;
      this.ui['chat-error'].hidden = false;
    } else if (reason === 'muted') {
      this.paintMuted(err.details.until ?? 0);
      showError(this.ui['chat-error'], err);
    } else {
      showError(this.ui['chat-error'], err);
    }
  }

  async moderate(event, payload, done = '') {
    hideError(this.ui['chat-error']);
    try {
      await this.socket.ask(event, payload);
      if (done) this.notice(done);
      if (event !== 'report:create') this.onModerated(event, payload);
    } catch (err) {
      showError(this.ui['chat-error'], err);
    }
  }

  async saveSettings(change) {
    hideError(this.ui['chat-error']);
    try {
      const { settings } = await this.socket.ask('chat:settings', change);
      this.paintSettings(settings);
      this.notice(change.filter_words ? 'Filter saved.' : '');
    } catch (err) {
      showError(this.ui['chat-error'], err);
    }
  }
}

