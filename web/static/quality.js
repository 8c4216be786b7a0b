/**
 * The viewer's video quality: a <select> over the player. "Auto" follows the
 * viewer's own link (the server moves it between the live's renditions from its
 * receiver reports); a height pins one (`room:quality`, kept for later joins of
 * this page). The Auto option shows the height of the picture playing now, read
 * from the video element itself ("Auto · 360p").
 *
 *   const picker = new QualityPicker(select, player, video);
 *   picker.show(joinAck);   // after room:join: {renditions, quality}
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
    this.select.hidden = false;
    this.paint();
  }

  hide() {
    this.select.hidden = true;
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
    const height = this.video.videoHeight;
    auto.textContent = height ? `Auto · ${height}p` : 'Auto';
  }
}
