/**
 * The LIVE on a profile page: the creator's stream while they are live (with
 * its title, viewer count and an Unmute button), a clear offline state that
 * turns into the stream by itself when they go live (`live:watch` +
 * `live:started`), and an ended state when the live ends (`live:ended`).
 *
 * Watching needs a signed-in socket: signed-out visitors get "Sign in to
 * watch", and creators on their own profile a link to their studio. The live's
 * chat (chat.js) opens under the video for viewers who joined and for the creator,
 * with the gifts: the tray for viewers (gift-tray.js), the board of top gifters
 * and diamonds (gift-board.js) and gift lines in the chat (gift-lines.js).
 *
 *   const stage = new LiveStage(sharedSocket);
 *   stage.show({ user, live, isSelf, signedIn });   // after each profile load
 *   stage.reset();                                   // the profile or the session changed
 */

import { ChatPanel } from './chat.js';
import { byTestId } from './dom.js';
import { ErrorCode, describeError } from './errors.js';
import { formatCount, handle, profilePath } from './format.js';
import { GiftBoard } from './gift-board.js';
import { GiftLines } from './gift-lines.js';
import { GiftTray } from './gift-tray.js';
import { LivePlayer } from './player.js';

/** Automatic rejoins after the media dropped, before asking for a click; reset once playing. */
export const MAX_REJOINS = 3;

const ENDED_BECAUSE = {
  ended_by_creator: (name) => `${name} ended the LIVE.`,
  creator_left: (name) => `${name}'s connection dropped.`,
  server_shutdown: () => 'The server restarted.',
  publish_failed: () => 'The stream could not start.',
  node_lost: () => 'The server running this LIVE stopped.',
};

const IDS = ['live-player', 'live-video', 'live-badge', 'live-viewers', 'live-overlay',
  'live-status', 'signin-to-watch', 'studio-link', 'live-retry', 'live-title', 'unmute',
  'offline-state', 'offline-detail', 'go-live-link', 'live-ended', 'live-ended-detail'];

export class LiveStage {
  /** @param {SharedSocket} socket the page's socket (its pushes are heard through socket.on) */
  constructor(socket, root = byTestId('live-stage')) {
    this.socket = socket;
    this.root = root;
    this.ui = Object.fromEntries(IDS.map((id) => [id, byTestId(id, root)]));
    this.player = new LivePlayer(socket, this.ui['live-video'], {
      onConnectionState: (state) => { if (state === 'failed') this.rejoin(); },
    });
    /** Whose profile and who looks: {user, isSelf, signedIn}, or null. */
    this.target = null;
    /** The creator's current live, or null. */
    this.live = null;
    this.rejoins = 0;
    /** The live's chat, under the video, for its creator and its viewers. */
    this.chat = new ChatPanel(socket, byTestId('chat-panel', root));
    this.gifts = {
      panel: byTestId('gift-panel', root),
      tray: new GiftTray(socket, byTestId('gift-tray', root)),
      board: new GiftBoard(socket, byTestId('gift-board', root)),
      lines: new GiftLines(socket, byTestId('chat-list', root)),
    };

    socket.on('live:started', ({ live }) => {
      if (live?.creator_id !== this.target?.user.id) return;
      this.rejoins = 0;
      this.onLive(live, 0);
    });
    socket.on('live:ended', ({ creator_id: creator, reason }) => {
      if (creator === this.target?.user.id) this.onEnded(reason);
    });
    socket.on('room:state', ({ live_id: id, viewers }) => {
      if (id && id === this.live?.live_id) this.setViewers(viewers);
    });
    // The creator renamed the LIVE from the studio (live:title).
    socket.on('live:title', ({ live_id: id, title }) => {
      if (!id || id !== this.live?.live_id) return;
      this.live = { ...this.live, title };
      this.ui['live-title'].textContent = title;
      this.ui['live-title'].title = title;
    });
    socket.on('room:left', ({ live_id: id }) => {
      if (id && id === this.player.live?.live_id) this.rejoin();
    });
    // The socket dropped (its node died, the network): say so while it is down. It
    // reconnects by itself (socket.js); on 'connect' the page joins again (media offered
    // again) and the chat catches up after the last id it showed (chat.js open()).
    socket.on('disconnect', (reason) => {
      if (reason === 'io client disconnect' || reason === 'io server disconnect') return;
      if (!this.live || !this.target?.signedIn || this.target.isSelf) return;
      this.overlay('connecting', 'Reconnecting…');
    });
    // A new socket is in no watch room and watches nothing: subscribe and join again.
    socket.on('connect', () => this.watch({ rejoin: true }));

    const video = this.ui['live-video'];
    video.addEventListener('playing', () => {
      this.rejoins = 0;
      this.overlay(null);
    });
    video.addEventListener('volumechange', () => this.paintMute());
    this.ui.unmute.addEventListener('click', () => {
      video.muted = !video.muted;
      if (!video.muted) video.play().catch(() => {});
    });
    this.ui['live-retry'].addEventListener('click', () => {
      this.rejoins = 0;
      this.watch({ rejoin: true });
    });
    // Leaving the page: let the camera-less connection go now rather than at ICE timeout.
    window.addEventListener('pagehide', () => this.player.close());
    window.addEventListener('pageshow', (event) => { if (event.persisted) this.watch({ rejoin: true }); });
  }

  /**
   * Show `user`'s live state. live: the profile's `live` field ({live_id, title,
   * viewers...} or null), shown at once; a signed-in page then asks the server
   * (live:watch) and keeps following it.
   */
  show({ user, live, isSelf, signedIn }) {
    const same = this.target?.user.id === user.id && this.target.signedIn === signedIn;
    this.target = { user, isSelf: Boolean(isSelf), signedIn: Boolean(signedIn) };
    this.root.hidden = false;
    if (same) return; // a reload of the same profile: already following it
    this.player.close();
    this.rejoins = 0;
    if (live) this.onLive(live, live.viewers ?? 0, { join: false });
    else this.paintOffline();
    this.watch({ rejoin: true });
  }

  /** Stop watching and hide (another profile, another session, not found). */
  reset() {
    this.target = null;
    this.live = null;
    this.chat.close();
    this.closeGifts();
    this.player.close();
    this.root.hidden = true;
  }

  // --- following the creator ---------------------------------------------------

  async watch({ rejoin = false } = {}) {
    const target = this.target;
    if (!target?.signedIn) return;
    let reply;
    try {
      reply = await this.socket.ask('live:watch', { user_id: target.user.id });
    } catch (err) {
      if (this.target !== target) return;
      if (this.live) this.overlay('error', describeError(err), { retry: true });
      return;
    }
    if (this.target !== target) return;
    if (reply.live) {
      const watching = this.player.live?.live_id === reply.live.live_id;
      this.onLive(reply.live, reply.viewers, { join: rejoin || !watching });
    } else if (this.live) {
      this.onEnded(null); // it ended while this page was not listening
    } else {
      this.paintOffline();
    }
  }

  onLive(live, viewers, { join = true } = {}) {
    const { signedIn, isSelf, user } = this.target;
    this.live = live;
    this.setViewers(viewers);
    this.ui['live-title'].textContent = live.title;
    this.ui['live-title'].title = live.title;
    this.paint('live-player');
    if (!signedIn) {
      this.ui['signin-to-watch'].href = `/?next=${encodeURIComponent(profilePath(user.username))}#signin`;
      this.overlay('signin', `${user.display_name} is LIVE.`);
    } else if (isSelf) {
      this.overlay('self', "You're LIVE. Viewers watch you here; you run it from your studio.");
      this.chat.open(live, { creator: true });
      this.openGifts(live, { viewer: false });
    } else if (join) {
      this.play();
    } else if (!this.player.pc) {
      this.overlay('connecting', 'Connecting…');
    }
  }

  async play() {
    const target = this.target;
    this.overlay('connecting', 'Connecting…');
    try {
      const reply = await this.player.join(target.user.id);
      if (!reply || this.target !== target) return;
      this.live = reply.live;
      this.setViewers(reply.viewers);
      this.paintMute();
      this.chat.open(reply.live, { creator: false });
      this.openGifts(reply.live, { viewer: true });
      // The overlay stays until the video element reports 'playing'.
    } catch (err) {
      if (this.target !== target) return;
      if (err.code === ErrorCode.NOT_FOUND) {
        this.onEnded(null); // ended between the push and the join
        return;
      }
      const final = err.code === ErrorCode.FORBIDDEN || err.code === ErrorCode.INVALID;
      this.overlay('error', describeError(err), { retry: !final });
    }
  }

  rejoin() {
    if (!this.live || !this.target?.signedIn || this.target.isSelf) return;
    if (this.rejoins >= MAX_REJOINS) {
      this.player.close();
      this.overlay('error', 'The stream was lost.', { retry: true });
      return;
    }
    this.rejoins += 1;
    this.play();
  }

  onEnded(reason) {
    const name = this.target.user.display_name;
    this.player.close();
    this.chat.close();
    this.closeGifts();
    this.live = null;
    const why = ENDED_BECAUSE[reason]?.(name) ?? '';
    const next = this.target.signedIn && !this.target.isSelf
      ? ' This page shows their next LIVE as soon as it starts.' : '';
    this.ui['live-ended-detail'].textContent = `${why}${next}`.trim();
    this.paint('live-ended');
  }

  // --- gifts ------------------------------------------------------------------------

  /** The board and gift lines for everyone in the live; the tray for viewers only. */
  openGifts(live, { viewer }) {
    this.gifts.panel.hidden = false;
    this.gifts.board.open(live);
    this.gifts.lines.open(live);
    if (viewer) this.gifts.tray.open(live, this.target.user);
    else this.gifts.tray.close();
  }

  closeGifts() {
    this.gifts.panel.hidden = true;
    this.gifts.tray.close();
    this.gifts.board.close();
    this.gifts.lines.close();
  }

  // --- painting -------------------------------------------------------------------

  /** Show one of live-player, offline-state, live-ended. */
  paint(part) {
    for (const id of ['live-player', 'offline-state', 'live-ended']) this.ui[id].hidden = id !== part;
  }

  paintOffline() {
    const { user, isSelf, signedIn } = this.target;
    this.live = null;
    this.player.close();
    this.chat.close();
    this.closeGifts();
    this.ui['offline-detail'].textContent = isSelf
      ? "You're not live. Go LIVE from your studio and your viewers will see you here."
      : signedIn
        ? `This page switches to the stream as soon as ${handle(user.username)} goes live.`
        : `Sign in to watch ${handle(user.username)} when they go live.`;
    this.ui['go-live-link'].hidden = !isSelf;
    this.paint('offline-state');
  }

  /**
   * The layer over the video: null (the stream plays), 'connecting', 'signin',
   * 'self' or 'error', with a line of text.
   */
  overlay(kind, text = '', { retry = false } = {}) {
    this.ui['live-overlay'].hidden = kind === null;
    this.ui['live-overlay'].dataset.kind = kind ?? 'none';
    this.ui['live-status'].textContent = text;
    this.ui['signin-to-watch'].hidden = kind !== 'signin';
    this.ui['studio-link'].hidden = kind !== 'self';
    this.ui['live-retry'].hidden = !retry;
    this.paintMute();
  }

  paintMute() {
    const watching = this.player.pc !== null && this.ui['live-overlay'].hidden;
    const { muted } = this.ui['live-video'];
    this.ui.unmute.hidden = !watching;
    this.ui.unmute.textContent = muted ? 'Unmute' : 'Mute';
    this.ui.unmute.dataset.state = muted ? 'muted' : 'unmuted';
  }

  setViewers(count) {
    this.ui['live-viewers'].textContent = formatCount(count);
  }
}
