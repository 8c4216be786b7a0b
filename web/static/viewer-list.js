/**
 * Who is watching a live (`room:viewers`): signed-in viewers, top gifters first
 * (with the coins they gave this LIVE), and how many watch signed out.
 *
 *   const list = new ViewerList(socket, byTestId('viewer-list'));
 *   list.toggle(live);   // open (and load) or close
 *   list.close();
 */

import { avatar } from './avatar.js';
import { byTestId, el } from './dom.js';
import { describeError } from './errors.js';
import { formatCount, handle, profilePath } from './format.js';

export class ViewerList {
  constructor(socket, root) {
    this.socket = socket;
    this.root = root;
    this.items = byTestId('viewer-list-items', root);
    this.more = byTestId('viewer-list-more', root);
    this.title = byTestId('viewer-list-title', root);
    this.loads = 0;
    byTestId('viewer-list-close', root).addEventListener('click', () => this.close());
  }

  get open() {
    return !this.root.hidden;
  }

  toggle(live) {
    if (this.open) this.close();
    else this.show(live);
  }

  async show(live) {
    const run = ++this.loads;
    this.root.hidden = false;
    this.items.replaceChildren(el('li', { class: 'empty', text: 'Loading…' }));
    this.more.hidden = true;
    let reply;
    try {
      reply = await this.socket.ask('room:viewers', { live_id: live.live_id });
    } catch (err) {
      if (run === this.loads) this.items.replaceChildren(el('li', { class: 'empty', text: describeError(err) }));
      return;
    }
    if (run !== this.loads) return;
    this.title.textContent = `Viewers · ${formatCount(reply.count)}`;
    this.items.replaceChildren(...(reply.viewers.length ? reply.viewers.map(({ user, coins }) =>
      el('li', { testid: 'viewer-row' },
        el('a', { href: profilePath(user.username) },
          avatar(user, 'sm'),
          el('span', { class: 'names' },
            el('span', { text: user.display_name, testid: 'viewer-name' }),
            el('span', { class: 'muted', text: handle(user.username) }))),
        coins ? el('span', { class: 'viewer-coins', testid: 'viewer-coins',
          text: `${formatCount(coins)} coins` }) : null))
      : [el('li', { class: 'empty', text: 'No signed-in viewers yet.' })]));
    this.more.textContent = reply.anonymous
      ? `and ${formatCount(reply.anonymous)} watching signed out` : '';
    this.more.hidden = !reply.anonymous;
  }

  close() {
    this.loads += 1;
    this.root.hidden = true;
  }
}
