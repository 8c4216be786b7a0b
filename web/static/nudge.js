/**
 * On a creator's profile: the nudge bell in the offline state ("please go
 * live") and the Live alerts toggle for followers.
 *
 * The bell asks the server how things stand (`nudge:state`) each time the
 * profile shows, so "Nudged: we'll tell you when Ann goes live" survives a
 * reload; it hides while the creator is live (`live:started`), for your own
 * profile, signed out, or when the creator turned nudges off. A refusal shows
 * the server's words ("you can nudge again in 5 h").
 *
 *   const bell = new NudgeBell(sharedSocket);
 *   bell.show({ user, isSelf, signedIn, following, blocked });   // after each render
 *   bell.reset();                                       // profile or session changed
 */

import { byTestId, hideError, setBusy, showError } from './dom.js';

/** "45 s", "12 min", "5 h" (the server's wording for waits). */
export function waitPhrase(seconds) {
  const s = Math.max(1, Math.round(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

export class NudgeBell {
  constructor(socket, root = document) {
    this.socket = socket;
    this.ui = Object.fromEntries(['nudge-button', 'nudge-status', 'nudge-error', 'alerts-button']
      .map((id) => [id, byTestId(id, root)]));
    /** {user, isSelf, signedIn, following} of the profile shown, or null. */
    this.target = null;
    /** The server's last answer to nudge:state, or null. */
    this.state = null;
    this.asks = 0;
    this.ui['nudge-button'].addEventListener('click', () => this.nudge());
    this.ui['alerts-button'].addEventListener('click', () => this.toggleAlerts());
    const refresh = ({ live, creator_id: creatorId } = {}) => {
      const id = live?.creator_id ?? creatorId;
      if (id && id === this.target?.user.id) this.refresh();
    };
    socket.on('live:started', refresh);
    socket.on('live:ended', refresh);
    socket.on('nudge:sent', refresh); // nudged from another tab
    socket.on('connect', () => this.refresh());
  }

  show({ user, isSelf, signedIn, following, blocked = false }) {
    const changed = this.target?.user.id !== user.id || this.target?.signedIn !== signedIn;
    const blockChanged = Boolean(this.target && this.target.blocked !== Boolean(blocked));
    this.target = { user, isSelf: Boolean(isSelf), signedIn: Boolean(signedIn),
      following: Boolean(following), blocked: Boolean(blocked) };
    if (changed) {
      this.state = null;
      hideError(this.ui['nudge-error']);
    }
    // A block (either way) takes the bell away at once; the server says so too, and an
    // unblock asks it again how things stand.
    if (changed || blockChanged
      || (this.state && this.state.following !== this.target.following)) this.refresh();
    this.paint();
  }

  reset() {
    this.target = null;
    this.state = null;
    this.asks += 1;
    this.paint();
  }

  async refresh() {
    const target = this.target;
    if (!target?.signedIn || target.isSelf) {
      this.paint();
      return;
    }
    const current = ++this.asks;
    try {
      const state = await this.socket.ask('nudge:state', { user_id: target.user.id });
      if (current !== this.asks || this.target?.user.id !== target.user.id) return;
      this.state = state;
    } catch {
      if (current !== this.asks) return;
      this.state = null;
    }
    this.paint();
  }

  paint() {
    const { target, state } = this;
    const bell = this.ui['nudge-button'];
    const status = this.ui['nudge-status'];
    const name = target?.user.display_name ?? '';
    const usable = Boolean(target?.signedIn && !target.isSelf && !target.blocked && state
      && !state.is_self);
    bell.hidden = !usable || state.live || !state.allowed;
    status.hidden = bell.hidden;
    if (!bell.hidden) {
      const waiting = state.nudged;
      const later = !waiting && state.retry_after > 0;
      bell.disabled = waiting || later;
      bell.setAttribute('aria-pressed', String(waiting));
      bell.dataset.state = waiting ? 'nudged' : later ? 'later' : 'ready';
      bell.querySelector('.nudge-label').textContent = waiting ? 'Nudged' : 'Nudge';
      bell.title = waiting ? `You nudged ${name}` : `Ask ${name} to go live`;
      status.textContent = waiting
        ? `Nudged: we'll tell you when ${name} goes live`
        : later ? `You can nudge ${name} again in ${waitPhrase(state.retry_after)}.`
          : `Want to watch ${name}? Nudge them to go live.`;
    }
    const alerts = this.ui['alerts-button'];
    alerts.hidden = !usable || !target.following;
    if (!alerts.hidden) {
      const on = Boolean(state.alerts);
      alerts.setAttribute('aria-pressed', String(on));
      alerts.dataset.state = on ? 'on' : 'off';
      alerts.textContent = on ? 'Live alerts on' : 'Live alerts off';
      alerts.title = on ? `You'll be told when ${name} goes live` : `Get told when ${name} goes live`;
    }
  }

  async nudge() {
    const target = this.target;
    if (!target || this.ui['nudge-button'].disabled) return;
    hideError(this.ui['nudge-error']);
    setBusy(this.ui['nudge-button'], true);
    try {
      const reply = await this.socket.ask('nudge:send', { user_id: target.user.id });
      if (this.target !== target) return;
      this.state = { ...this.state, nudged: true, retry_after: reply.retry_after };
    } catch (err) {
      if (this.target !== target) return;
      showError(this.ui['nudge-error'], err);
      await this.refresh(); // live now, nudges off, already nudged: show how it stands
    } finally {
      setBusy(this.ui['nudge-button'], false);
      this.paint();
    }
  }

  async toggleAlerts() {
    const target = this.target;
    if (!target || !this.state) return;
    const on = !this.state.alerts;
    hideError(this.ui['nudge-error']);
    setBusy(this.ui['alerts-button'], true);
    try {
      const reply = await this.socket.ask('alerts:set', { user_id: target.user.id, on });
      if (this.target === target) this.state = { ...this.state, alerts: reply.on };
    } catch (err) {
      showError(this.ui['nudge-error'], err);
    } finally {
      setBusy(this.ui['alerts-button'], false);
      this.paint();
    }
  }
}
