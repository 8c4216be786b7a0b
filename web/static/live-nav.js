/**
 * Next and previous LIVE from Discover's order (GET /api/lives: most viewers
 * first): arrows on the player, ArrowUp/ArrowDown keys, and a vertical swipe on
 * a phone (up: next, down: previous, like a feed).
 *
 *   const nav = new LiveNav({ prev, next, surface });
 *   nav.show(creatorUsername);   // when a LIVE shows; arrows appear if others are live
 *   nav.hide();
 */

import { api } from './api.js';
import { profilePath } from './format.js';

/** A vertical move this long (px), mostly vertical, is a swipe. */
const SWIPE_PX = 70;

export class LiveNav {
  constructor({ prev, next, surface }) {
    this.buttons = { prev, next };
    this.targets = { prev: null, next: null };
    this.current = null;
    prev.addEventListener('click', () => this.go('prev'));
    next.addEventListener('click', () => this.go('next'));
    document.addEventListener('keydown', (event) => {
      if (!this.current || event.target.closest?.('input, textarea, select')) return;
      if (event.key === 'ArrowDown') this.go('next');
      else if (event.key === 'ArrowUp') this.go('prev');
    });
    let start = null;
    surface.addEventListener('touchstart', (event) => {
      const touch = event.touches[0];
      start = event.touches.length === 1 ? { x: touch.clientX, y: touch.clientY } : null;
    }, { passive: true });
    surface.addEventListener('touchend', (event) => {
      const touch = event.changedTouches[0];
      if (!start || !touch) return;
      const dx = touch.clientX - start.x;
      const dy = touch.clientY - start.y;
      start = null;
      if (Math.abs(dy) > SWIPE_PX && Math.abs(dy) > 2 * Math.abs(dx)) this.go(dy < 0 ? 'next' : 'prev');
    }, { passive: true });
  }

  async show(username) {
    this.current = username;
    let lives = [];
    try {
      lives = (await api('/api/lives', { token: null })).lives ?? [];
    } catch {
      lives = []; // no arrows: the page itself still works
    }
    if (this.current !== username) return;
    const names = lives.map((live) => live.creator?.username).filter(Boolean);
    const at = names.indexOf(username);
    const others = names.filter((name) => name !== username);
    if (!others.length) {
      this.targets = { prev: null, next: null };
    } else if (at < 0) {
      this.targets = { prev: others[others.length - 1], next: others[0] };
    } else {
      const n = names.length;
      this.targets = { prev: names[(at - 1 + n) % n], next: names[(at + 1) % n] };
    }
    for (const side of ['prev', 'next']) {
      const target = this.targets[side];
      this.buttons[side].hidden = !target;
      if (target) this.buttons[side].title = `${side === 'next' ? 'Next' : 'Previous'} LIVE: @${target}`;
    }
  }

  hide() {
    this.current = null;
    this.targets = { prev: null, next: null };
    this.buttons.prev.hidden = true;
    this.buttons.next.hidden = true;
  }

  go(side) {
    const target = this.targets[side];
    if (target) location.assign(profilePath(target));
  }
}
