/**
 * The viewer's video quality: a <select> over the player. "Auto" follows the
 * viewer's own link (the server moves it between the live's renditions from its
 * receiver reports); a height pins one (`room:quality`, kept for later joins of
 * this page). The Auto option shows the height the server sends now ("Auto ·
 * 360p"), from each `room:rendition` push (the server moved this viewer: its
 * `height`); before the first, the picture's own height.
 *
 *   const picker = new QualityPicker(select, player, video);
 *   picker.show(joinAck);   // after room:join: {renditions, quality}
 *   picker.moved(push);     // room:rendition: {live_id, quality, rendition, height}
 *   picker.hide();          // not watching
 */

import { el } from './dom.js';

export class QualityPicker {
  /**
   * @param {HTMLSelectElement} select
   * @param {LivePlayer} player its setQuality() asks the server
   * @param {HTMLVideoElement} video the picture whose height Auto shows
   */
  constructor(select, player, video) {
    this.select = select;
    this.player = player;
    this.video = video;
    /** The height the server says it sends (360), or null: the picture's own. */
    this.height = null;
    select.addEventListener('change', () => this.pick(select.value));
    video.addEventListener('resize', () => this.paint());
  }

  /** Offer the live's renditions (a live with one rendition has no choice: hidden). */
  show(ack) {
    const renditions = ack?.renditions ?? [];
    if (renditions.length < 2) {
      this.hide();
      return;
    }
    this.select.replaceChildren(
      el('option', { value: 'auto', text: 'Auto' }),
      ...renditions.map((name) => el('option', { value: name, text: `${name}p` })));
    this.select.value = ack.quality ?? 'auto';
    this.height = null;
    this.select.hidden = false;
    this.paint();
  }

  /** A `room:rendition` push: the server now sends this viewer another rendition. */
  moved(push) {
    if (!Number.isInteger(push?.height) || push.height <= 0) return;
    this.height = push.height;
    this.select.dataset.sent = String(push.height); // what the server said (tests read it)
    this.paint();
  }

  hide() {
    this.select.hidden = true;
    this.height = null;
  }

  async pick(quality) {
    try {
      await this.player.setQuality(quality);
    } catch {
      // Not watching any more (the live ended, the media dropped): the next join asks for it.
    }
    this.paint();
  }

  paint() {
    const auto = this.select.querySelector('option[value="auto"]');
    if (!auto) return;
    const height = this.height ?? this.video.videoHeight;
    auto.textContent = height ? `Auto · ${height}p` : 'Auto';
  }
}
