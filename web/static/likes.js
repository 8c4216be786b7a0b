/**
 * Tap-to-like: hearts float up from the like button (or a double tap on the
 * video) and the live's like count follows the server.
 *
 * Taps are coalesced: one `live:like` {live_id, count} every FLUSH_MS carries the
 * taps since the last (at most MAX_TAPS, the server's bound; more wait for the next
 * flush). The count shown is the highest of the ack's total, the room's
 * `live:likes` pushes (coalesced by the server, twice a second at most) and the
 * local taps not yet acknowledged. Signed out, a tap asks to sign in instead.
 *
 *   const likes = new LikeButton(socket, { button, count, hearts, onSignIn });
 *   likes.open(live, initialCount, { signedIn });
 *   likes.close();
 */

import { formatCount } from './format.js';

export const FLUSH_MS = 300;
export const MAX_TAPS = 15;
/** Hearts on screen at once (each lives ~1.2 s). */
const HEARTS_MAX = 24;

export class LikeButton {
  constructor(socket, { button, count, hearts, onSignIn, onError }) {
    this.socket = socket;
    this.button = button;
    this.countNode = count;
    this.hearts = hearts;
    this.onSignIn = onSignIn;
    this.onError = onError ?? (() => {});
    this.live = null;
    this.signedIn = false;
    this.total = 0;
    this.pending = 0;
    this.timer = null;
    button.addEventListener('click', () => this.tap());
    socket.on('live:likes', ({ live_id: id, likes }) => {
      if (id === this.live?.live_id) this.setTotal(likes);
    });
  }

  open(live, likes = 0, { signedIn }) {
    if (this.live?.live_id !== live.live_id) {
      this.total = 0;
      this.pending = 0;
    }
    this.live = live;
    this.signedIn = signedIn;
    this.setTotal(likes);
  }

  close() {
    clearTimeout(this.timer);
    this.timer = null;
    this.live = null;
    this.pending = 0;
  }

  /** One tap: a heart, and a like on its way (signed in). */
  tap() {
    if (!this.live) return;
    if (!this.signedIn) {
      this.onSignIn('Sign in to like this LIVE.');
      return;
    }
    this.heart();
    this.pending += 1;
    this.paint();
    if (!this.timer) this.timer = setTimeout(() => this.flush(), FLUSH_MS);
  }

  async flush() {
    this.timer = null;
    const live = this.live;
    if (!live || this.pending === 0) return;
    const taps = Math.min(this.pending, MAX_TAPS);
    this.pending -= taps;
    if (this.pending > 0) this.timer = setTimeout(() => this.flush(), FLUSH_MS);
    try {
      const { likes } = await this.socket.ask('live:like', { live_id: live.live_id, count: taps });
      if (this.live === live) this.setTotal(likes);
    } catch (err) {
      if (this.live !== live) return;
      this.paint(); // the taps did not count: the number goes back
      this.onError(err);
    }
  }

  setTotal(likes) {
    this.total = Math.max(this.total, Number(likes) || 0);
    this.paint();
  }

  paint() {
    const shown = this.total + this.pending;
    this.countNode.textContent = formatCount(shown);
    this.countNode.dataset.count = String(shown);
  }

  heart() {
    if (this.hearts.childElementCount >= HEARTS_MAX) this.hearts.firstElementChild.remove();
    const heart = document.createElement('span');
    heart.className = 'heart';
    heart.style.setProperty('--drift', `${Math.round(Math.random() * 60 - 30)}px`);
    heart.style.setProperty('--hue', String(330 + Math.round(Math.random() * 40)));
    heart.addEventListener('animationend', () => heart.remove());
    this.hearts.append(heart);
  }
}
