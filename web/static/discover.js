/**
 * Discover on the landing page: who is live now, most viewers first, each a
 * card linking to the creator's profile. Signed in, the list follows the
 * server's `discover:update` pushes; signed out (no socket), it asks
 * GET /api/lives every POLL_MS while the page is visible.
 *
 *   const discover = new DiscoverList(sharedSocket);
 *   discover.start({ signedIn: true });   // again whenever the session changes
 */

import { api } from './api.js';
import { avatar, hueOf } from './avatar.js';
import { byTestId, el } from './dom.js';
import { formatCount, handle, profilePath } from './format.js';

export const POLL_MS = 10000;

/** Most viewers first; among equals, the longest running first. */
export function byViewers(lives) {
  return [...lives].sort((a, b) => (b.viewers - a.viewers) || (a.started_at - b.started_at));
}

function card(live) {
  const { creator } = live;
  const node = el('a', { class: 'live-card', href: profilePath(creator.username), testid: 'discover-card' },
    el('div', { class: 'live-card-cover' },
      el('div', { class: 'live-card-top' },
        el('span', { class: 'live-badge', text: 'Live' }),
        el('span', { class: 'pill' },
          el('span', { testid: 'discover-card-viewers' }), ' watching')),
      avatar(creator, 'lg')),
    el('div', { class: 'live-card-body' },
      el('strong', { class: 'live-card-title', testid: 'discover-card-title' }),
      el('span', { class: 'live-card-name', testid: 'discover-card-name' }),
      el('span', { class: 'live-card-handle', text: handle(creator.username) })));
  node.style.setProperty('--cover-hue', String(hueOf(creator.id)));
  node.dataset.liveId = live.live_id;
  node.dataset.creator = creator.username;
  return node;
}

function update(node, live) {
  byTestId('discover-card-viewers', node).textContent = formatCount(live.viewers);
  byTestId('discover-card-title', node).textContent = live.title;
  byTestId('discover-card-name', node).textContent = live.creator.display_name;
  node.title = `${live.creator.display_name}: ${live.title}`;
}

export class DiscoverList {
  constructor(socket, { list = byTestId('discover-list'), empty = byTestId('discover-empty') } = {}) {
    this.socket = socket;
    this.list = list;
    this.empty = empty;
    /** 'push' (signed in), 'poll' (signed out) or null (stopped). */
    this.mode = null;
    this.timer = null;
    this.cards = new Map(); // live id -> card element

    socket.on('discover:update', ({ lives }) => { if (this.mode === 'push') this.render(lives); });
    socket.on('connect', () => { if (this.mode === 'push') this.subscribe(); }); // a new socket
    document.addEventListener('visibilitychange', () => {
      if (this.mode === 'poll' && !document.hidden) this.poll();
    });
  }

  /** Show the list and keep it current: pushes when signed in, polling when not. */
  start({ signedIn }) {
    this.stop();
    this.mode = signedIn ? 'push' : 'poll';
    if (signedIn) this.subscribe();
    else this.poll();
  }

  stop() {
    this.mode = null;
    clearTimeout(this.timer);
    this.timer = null;
  }

  async subscribe() {
    try {
      const { lives } = await this.socket.ask('discover:watch', {});
      if (this.mode === 'push') this.render(lives);
    } catch {
      // No socket (server restarting, token refused): fall back to asking over HTTP.
      if (this.mode === 'push') {
        this.mode = 'poll';
        this.poll();
      }
    }
  }

  async poll() {
    clearTimeout(this.timer);
    try {
      const { lives } = await api('/api/lives', { token: null });
      if (this.mode === 'poll') this.render(lives);
    } catch {
      // Keep the last list; the next poll tries again.
    }
    if (this.mode === 'poll' && !document.hidden) {
      this.timer = setTimeout(() => this.poll(), POLL_MS);
    }
  }

  /** Show `lives` (rows of GET /api/lives), reusing the cards already shown. */
  render(lives) {
    const rows = byViewers((lives ?? []).filter((live) => live?.creator));
    const next = new Map();
    for (const live of rows) {
      const node = this.cards.get(live.live_id) ?? card(live);
      update(node, live);
      next.set(live.live_id, node);
    }
    this.cards = next;
    const order = [...next.values()];
    const same = order.length === this.list.children.length
      && order.every((node, i) => this.list.children[i] === node);
    if (!same) this.list.replaceChildren(...order); // moving cards only when the order changed
    this.list.dataset.count = String(order.length);
    this.empty.hidden = order.length > 0;
  }
}
