/**
 * The viewer's connection, told honestly: "Reconnecting…" over the video while
 * the page's socket is down, the media connection is down, or the picture froze
 * (no new frame for FROZEN_MS while it should be playing), and gone again once
 * frames flow. Rejoining is not done here: live-stage.js (and the socket code)
 * rejoin by themselves; this module only watches and paints.
 *
 *   const state = new ConnectionState(sharedSocket, videoElement, badgeElement);
 *   state.watching(true);             // a stream is expected (the viewer joined)
 *   state.media(pc.connectionState);  // from the player's peer connection
 *   state.watching(false);            // ended, offline, another profile
 */

/** No new frame for this long while watching reads as a frozen picture. */
export const FROZEN_MS = 2500;
/** How often the picture is checked for progress. */
const CHECK_MS = 500;

export class ConnectionState {
  /**
   * @param {SharedSocket} socket its 'disconnect' and 'connect' are heard
   * @param {HTMLVideoElement} video the live's video
   * @param {HTMLElement} badge shown (hidden = false) while reconnecting
   */
  constructor(socket, video, badge) {
    this.video = video;
    this.badge = badge;
    this.active = false;
    this.socketDown = false;
    this.mediaDown = false;
    this.frozen = false;
    this.lastTime = -1;
    this.lastProgress = 0;
    this.timer = null;
    socket.on('disconnect', () => { this.socketDown = true; this.paint(); });
    socket.on('connect', () => { this.socketDown = false; this.paint(); });
    video.addEventListener('playing', () => this.progressed());
    video.addEventListener('timeupdate', () => this.progressed());
  }

  /** A stream is (true) or is no longer (false) expected on this page. */
  watching(on) {
    this.active = on;
    if (on && !this.timer) {
      this.lastProgress = performance.now();
      this.timer = setInterval(() => this.check(), CHECK_MS);
    } else if (!on) {
      clearInterval(this.timer);
      this.timer = null;
      this.mediaDown = false;
      this.frozen = false;
    }
    this.paint();
  }

  /** The player's peer connection state (new, connecting, connected, disconnected, failed, closed). */
  media(state) {
    this.mediaDown = state === 'disconnected' || state === 'failed';
    this.paint();
  }

  /** True while the badge shows. */
  get reconnecting() {
    return this.active && (this.socketDown || this.mediaDown || this.frozen);
  }

  progressed() {
    const t = this.video.currentTime;
    if (t !== this.lastTime) {
      this.lastTime = t;
      this.lastProgress = performance.now();
      if (this.frozen || this.mediaDown) {
        this.frozen = false;
        this.mediaDown = false;
        this.paint();
      }
    }
  }

  check() {
    this.progressed();
    // Only a picture that was playing can freeze: not while the first frame is awaited.
    const started = this.video.srcObject && this.lastTime > 0;
    const frozen = Boolean(started) && performance.now() - this.lastProgress > FROZEN_MS;
    if (frozen !== this.frozen) {
      this.frozen = frozen;
      this.paint();
    }
  }

  paint() {
    this.badge.hidden = !this.reconnecting;
  }
}
