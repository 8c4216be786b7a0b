/**
 * A live's gift board: the top gifters of this LIVE (by coins spent) and the
 * creator's diamonds earned in it. Shown under the viewer's stream and in the
 * studio.
 *
 * The server sends a board with every `gift:received` push, as the ack of
 * `gift:board {live_id}`, and as a `gift:board` push to a viewer who just
 * joined. Pushes may overtake each other, so a board older (lower `seq`) than
 * the one shown is ignored.
 *
 *   const board = new GiftBoard(sharedSocket, byTestId('gift-board'));
 *   board.open(live);   // after room:join, or when the studio goes live
 *   board.close();
 */

import { byTestId, el } from './dom.js';
import { formatCount, profilePath } from './format.js';

export class GiftBoard {
  constructor(socket, root) {
    this.socket = socket;
    this.root = root;
    this.ui = {
      diamonds: byTestId('gift-diamonds', root),
      list: byTestId('gift-leaderboard', root),
    };
    this.live = null;
    this.seq = -1;
    socket.on('gift:received', (push) => this.apply(push));
    socket.on('gift:board', (push) => this.apply(push));
  }

  /** Show `live`'s board: empty at once, then the server's. */
  async open(live) {
    if (this.live?.live_id === live.live_id) {
      this.root.hidden = false;
      return this.refresh();
    }
    this.live = { live_id: live.live_id };
    this.seq = -1;
    this.paint({ leaderboard: [], diamonds_this_live: 0, seq: -1 });
    this.root.hidden = false;
    return this.refresh();
  }

  async refresh() {
    const live = this.live;
    if (!live) return;
    try {
      const { board } = await this.socket.ask('gift:board', { live_id: live.live_id });
      if (this.live === live) this.apply(board);
    } catch {
      // The pushes keep the board current; a failed read only delays the first paint.
    }
  }

  close() {
    this.live = null;
    this.seq = -1;
    this.root.hidden = true;
    this.ui.list.replaceChildren();
  }

  apply(board) {
    if (!this.live || board?.live_id !== this.live.live_id) return;
    if (typeof board.seq !== 'number' || board.seq < this.seq) return;
    this.seq = board.seq;
    this.paint(board);
  }

  paint(board) {
    this.ui.diamonds.textContent = formatCount(board.diamonds_this_live ?? 0);
    this.ui.list.replaceChildren(...(board.leaderboard ?? []).map(({ user, coins }, i) =>
      el('li', { class: 'gift-rank', testid: 'gift-rank', 'data-user': user.id },
        el('span', { class: 'gift-rank-place', text: String(i + 1) }),
        el('a', { class: 'gift-rank-name', testid: 'gift-rank-name', href: profilePath(user.username),
          text: user.display_name }),
        el('span', { class: 'gift-rank-coins', testid: 'gift-rank-coins', text: formatCount(coins) }))));
  }
}
