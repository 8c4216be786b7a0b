/**
 * Gift lines in a live's chat stream: "Bob sent [rose] Rose x3".
 *
 * Each `gift:received` push names the sender's `streak` (their run of one gift)
 * and its `combo` (xN). One line stands for a streak and is updated in place as
 * the combo grows; a push older than the line (a lower combo, pushes may
 * overtake each other) changes nothing. Lines go into the given list (the chat
 * panel's, on a profile; the studio's own gift list), newest last.
 *
 *   const lines = new GiftLines(sharedSocket, listElement);
 *   lines.open(live);
 *   lines.close();
 */

import { el } from './dom.js';
import { profilePath } from './format.js';

/** Streaks remembered per live (older lines are no longer updated). */
export const MAX_STREAKS = 200;

export class GiftLines {
  /**
   * @param {SharedSocket} socket
   * @param {HTMLElement} list where lines go (an <ol>/<ul>)
   * @param {object} [options]
   * @param {boolean} [options.clear] empty `list` on open (a list of gifts only)
   */
  constructor(socket, list, { clear = false } = {}) {
    this.socket = socket;
    this.list = list;
    this.clear = clear;
    this.live = null;
    /** streak -> {combo, node} */
    this.streaks = new Map();
    socket.on('gift:received', (push) => this.onGift(push));
  }

  open(live) {
    if (this.live?.live_id === live.live_id) return;
    this.live = { live_id: live.live_id };
    this.streaks.clear();
    if (this.clear) this.list.replaceChildren();
  }

  close() {
    this.live = null;
    this.streaks.clear();
  }

  onGift(push) {
    if (!this.live || push?.live_id !== this.live.live_id) return;
    const known = this.streaks.get(push.streak);
    if (known && known.combo >= push.combo) return;
    const node = this.line(push);
    if (known?.node.isConnected) {
      known.node.replaceWith(node);
    } else {
      const stick = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
      this.list.append(node);
      if (stick) this.list.scrollTop = this.list.scrollHeight;
    }
    this.streaks.delete(push.streak);
    this.streaks.set(push.streak, { combo: push.combo, node });
    while (this.streaks.size > MAX_STREAKS) this.streaks.delete(this.streaks.keys().next().value);
  }

  line(push) {
    const { sender, gift } = push;
    return el('li', { class: 'chat-line gift-line', testid: 'gift-line', 'data-streak': push.streak,
      style: { '--gift-color': /^#[0-9a-f]{6}$/i.test(gift.color) ? gift.color : '#ff2d55' } },
    el('a', { class: 'chat-name', testid: 'gift-line-name', href: profilePath(sender.username),
      text: sender.display_name }),
    el('span', { class: 'gift-line-text', text: 'sent ' }),
    el('img', { class: 'gift-icon', src: gift.icon, alt: '', width: 20, height: 20 }),
    el('span', { class: 'gift-line-text', text: ` ${gift.name} ` }),
    el('strong', { class: 'gift-combo', testid: 'gift-combo', text: `x${push.combo}` }));
  }
}
