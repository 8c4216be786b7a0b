/**
 * The LIVE on a profile page: the creator's stream while they are live, a clear
 * offline state that turns into the stream by itself when they go live
 * (`live:watch` + `live:started`), and an ended state when the live ends
 * (`live:ended`).
 *
 * Anyone with the link watches a public LIVE, signed out too (the page's socket
 * is then anonymous: socket.js): video, counts, the chat read-only and the gift
 * board. Chatting, liking, following and gifting ask to sign in. A LIVE its creator
 * kept for signed-in viewers shows "Sign in to watch" instead; a creator on their
 * own profile gets a link to their studio.
 *
 * Watching: on a desktop the video and the chat sit side by side with the gifts
 * under the video; on a phone (portrait or landscape) the video fills the screen
 * (`data-watching` on the stage, watch.css), with the chat and gift lines over its
 * bottom, the title, creator and Follow on its top, a rail of actions (like, gift,
 * share) on its right and the gift tray sliding up. The viewer count opens the
 * viewer list (viewer-list.js), the arrows and a swipe go to the next LIVE
 * (live-nav.js), hearts count likes (likes.js), and a "Reconnecting…" badge shows
 * while the connection is down (connection-state.js).
 *
 *   const stage = new LiveStage(sharedSocket, root, { onFollow });
 *   stage.show({ user, live, isSelf, signedIn });   // after each profile load
 *   stage.setFollow({ visible, label });            // the profile's follow state
 *   stage.reset();                                   // the profile or the session changed
 */

import { paintAvatar } from './avatar.js';
import { ChatPanel } from './chat.js';
import { ConnectionState } from './connection-state.js';
import { byTestId, el } from './dom.js';
import { ErrorCode, describeError } from './errors.js';
import { formatCount, handle, profilePath } from './format.js';
import { GiftBoard } from './gift-board.js';
import { GiftLines } from './gift-lines.js';
import { GiftTray } from './gift-tray.js';
import { LikeButton } from './likes.js';
import { LiveNav } from './live-nav.js';
import { LivePlayer } from './player.js';
import { QualityPicker } from './quality.js';
import { ViewerList } from './viewer-list.js';

/** Automatic rejoins after the media dropped, before asking for a click; reset once playing. */
export const MAX_REJOINS = 3;
/** ICE restarts tried for one drop before rejoining from scratch; reset once connected. */
export const MAX_RESTARTS = 2;
/** A connection 'disconnected' this long (ms) restarts ICE: Chromium reports it after
 * ~2.5-5 s without answers to its checks, and a short blip recovers on its own first. */
export const DISCONNECTED_RESTART_MS = 1500;
/** How long a line over the video ("Link copied") stays, ms. */
const TOAST_MS = 3500;

const ENDED_BECAUSE = {
  ended_by_creator: (name) => `${name} ended the LIVE.`,
  creator_left: (name) => `${name}'s connection dropped.`,
  server_shutdown: () => 'The server restarted.',
  publish_failed: () => 'The stream could not start.',
  node_lost: () => 'The server running this LIVE stopped.',
};

const IDS = ['live-player', 'live-video', 'live-badge', 'live-viewers', 'live-overlay',
  'live-status', 'signin-to-watch', 'studio-link', 'live-retry', 'live-title', 'unmute',
  'offline-state', 'offline-detail', 'go-live-link', 'live-ended', 'live-ended-detail',
  'live-title-top', 'player-avatar', 'player-name', 'live-follow', 'viewers-button',
  'like-button', 'like-count', 'hearts', 'gift-toggle', 'gift-close', 'live-share',
  'watch-toast', 'live-reconnecting', 'prev-live', 'next-live', 'exit-fullscreen',
  'enter-fullscreen', 'gift-signin', 'gift-signin-link', 'chat-signin', 'chat-form',
  'live-quality'];

export class LiveStage {
  /**
   * @param {SharedSocket} socket the page's socket (its pushes are heard through socket.on)
   * @param {HTMLElement} root the stage
   * @param {object} [handlers]
   * @param {() => void} [handlers.onFollow] Follow on the video was pressed (signed in)
   * @param {() => void} [handlers.onShareDm] "Send in a message" after Share (signed in)
   */
  constructor(socket, root = byTestId('live-stage'), { onFollow, onShareDm } = {}) {
    this.socket = socket;
    this.root = root;
    this.onFollow = onFollow ?? (() => {});
    this.onShareDm = onShareDm ?? null;
    this.ui = Object.fromEntries(IDS.map((id) => [id, byTestId(id, root)]));
    this.connection = new ConnectionState(socket, this.ui['live-video'], this.ui['live-reconnecting']);
    this.player = new LivePlayer(socket, this.ui['live-video'], {
      onConnectionState: (state) => this.onMediaState(state),
    });
    this.restartsThisDrop = 0;
    this.disconnectedTimer = null;
    /** The page's socket is down: ICE restarts wait for the new one (a resume restarts). */
    this.socketDown = false;
    // A network change (Wi-Fi to cellular, back online): find the path again at once on
    // the same connection, not after ICE notices (media stays, no rejoin).
    window.addEventListener('online', () => this.recover({ fresh: true }));
    navigator.connection?.addEventListener?.('change', () => this.recover({ fresh: true }));
    this.quality = new QualityPicker(this.ui['live-quality'], this.player, this.ui['live-video']);
    /** Whose profile and who looks: {user, isSelf, signedIn}, or null. */
    this.target = null;
    /** The creator's current live, or null. */
    this.live = null;
    this.rejoins = 0;
    this.toastTimer = null;
    /** The live's chat, for its creator and its viewers (read-only signed out). */
    this.chat = new ChatPanel(socket, byTestId('chat-panel', root));
    this.gifts = {
      panel: byTestId('gift-panel', root),
      tray: new GiftTray(socket, byTestId('gift-tray', root), { onShown: () => this.paintGiftToggle() }),
      board: new GiftBoard(socket, byTestId('gift-board', root)),
      lines: new GiftLines(socket, byTestId('chat-list', root)),
    };
    this.likes = new LikeButton(socket, {
      button: this.ui['like-button'], count: this.ui['like-count'], hearts: this.ui.hearts,
      onSignIn: (text) => this.toast(text, { signIn: true }),
      onError: (err) => this.toast(describeError(err)),
    });
    this.viewerList = new ViewerList(socket, byTestId('viewer-list', root));
    this.nav = new LiveNav({ prev: this.ui['prev-live'], next: this.ui['next-live'],
      surface: this.ui['live-player'] });

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
    // The server moved this viewer's video to another rendition (the picker's Auto label).
    socket.on('room:rendition', (push) => {
      if (push?.live_id && push.live_id === this.player.live?.live_id) this.quality.moved(push);
    });
    socket.on('room:left', ({ live_id: id }) => {
      if (id && id === this.player.live?.live_id) this.rejoin();
    });
    // The socket dropped (its node died, the network): say so while it is down. It
    // reconnects by itself (socket.js); on 'connect' the page joins again (media offered
    // again) and the chat catches up after the last id it showed (chat.js open()).
    socket.on('disconnect', (reason) => {
      if (reason === 'io client disconnect' || reason === 'io server disconnect') return;
      this.socketDown = true;
      if (!this.live || !this.target?.signedIn || this.target.isSelf) return;
      this.overlay('connecting', 'Reconnecting…');
    });
    // A new socket is in no watch room and watches nothing: take the held join back
    // (room:resume, same peer connection), else join again; subscribe either way.
    socket.on('connect', () => this.reconnected());

    const video = this.ui['live-video'];
    video.addEventListener('playing', () => {
      this.rejoins = 0;
      this.overlay(null);
    });
    video.addEventListener('volumechange', () => this.paintMute());
    // A double tap on the picture is a like, as in every LIVE app.
    video.addEventListener('dblclick', () => this.likes.tap());
    this.ui.unmute.addEventListener('click', () => {
      video.muted = !video.muted;
      if (!video.muted) video.play().catch(() => {});
    });
    this.ui['live-retry'].addEventListener('click', () => {
      this.rejoins = 0;
      this.watch({ rejoin: true });
    });
    this.ui['live-follow'].addEventListener('click', () => {
      if (this.target?.signedIn) this.onFollow();
      else this.toast('Sign in to follow.', { signIn: true });
    });
    this.ui['viewers-button'].addEventListener('click', () => {
      if (this.live) this.viewerList.toggle(this.live);
    });
    this.ui['gift-toggle'].addEventListener('click', () => this.toggleGifts());
    this.ui['gift-close'].addEventListener('click', () => this.toggleGifts(false));
    this.ui['live-share'].addEventListener('click', () => this.share());
    this.ui['exit-fullscreen'].addEventListener('click', () => this.fullscreen(false));
    this.ui['enter-fullscreen'].addEventListener('click', () => this.fullscreen(true));
    // Leaving the page: let the camera-less connection go now rather than at ICE timeout,
    // and say so (room:leave), or the server holds the join for this page's return.
    window.addEventListener('pagehide', () => { this.player.leave(); });
    window.addEventListener('pageshow', (event) => { if (event.persisted) this.watch({ rejoin: true }); });
  }

  /**
   * Show `user`'s live state. live: the profile's `live` field ({live_id, title,
   * viewers...} or null), shown at once; the page then asks the server
   * (live:watch, over an anonymous socket when signed out) and keeps following it.
   */
  show({ user, live, isSelf, signedIn }) {
    const same = this.target?.user.id === user.id && this.target.signedIn === signedIn;
    this.target = { user, isSelf: Boolean(isSelf), signedIn: Boolean(signedIn) };
    this.root.hidden = false;
    paintAvatar(this.ui['player-avatar'], user);
    this.ui['player-name'].textContent = user.display_name;
    const next = `/?next=${encodeURIComponent(profilePath(user.username))}#signin`;
    for (const id of ['signin-to-watch', 'gift-signin-link', 'chat-signin']) this.ui[id].href = next;
    if (same) return; // a reload of the same profile: already following it
    this.player.close();
    this.rejoins = 0;
    if (live) this.onLive(live, live.viewers ?? 0, { join: false });
    else this.paintOffline();
    this.watch({ rejoin: true });
  }

  /** The Follow button on the video: shown while `visible`, with `label`. */
  setFollow({ visible, label = 'Follow' }) {
    this.ui['live-follow'].hidden = !visible;
    this.ui['live-follow'].textContent = label;
  }

  /** Stop watching and hide (another profile, another session, not found). */
  reset() {
    this.target = null;
    this.live = null;
    this.chat.close();
    this.closeGifts();
    this.player.close();
    this.quality.hide();
    this.likes.close();
    this.viewerList.close();
    this.nav.hide();
    this.setWatching(false);
    this.root.hidden = true;
  }

  // --- following the creator ---------------------------------------------------

  async watch({ rejoin = false } = {}) {
    const target = this.target;
    if (!target) return;
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
    this.ui['live-title-top'].textContent = live.title;
    this.paint('live-player');
    this.likes.open(live, live.likes ?? 0, { signedIn });
    this.nav.show(user.username);
    if (!signedIn && live.signed_in_only) {
      this.setWatching(false);
      this.overlay('signin', `${user.display_name} keeps this LIVE for signed-in viewers.`);
    } else if (isSelf) {
      this.setWatching(false);
      this.overlay('self', "You're LIVE. Viewers watch you here; you run it from your studio.");
      this.chat.open(live, { creator: true });
      this.openGifts(live, { viewer: false });
    } else if (join) {
      this.setWatching(true);
      this.play();
    } else if (!this.player.pc) {
      this.setWatching(true);
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
      this.quality.show(reply);
      this.setViewers(reply.viewers);
      this.likes.open(reply.live, reply.likes ?? 0, { signedIn: target.signedIn });
      this.paintMute();
      this.chat.open(reply.live, { creator: false });
      this.paintSignedOut();
      this.openGifts(reply.live, { viewer: target.signedIn });
      // The overlay stays until the video element reports 'playing'.
    } catch (err) {
      if (this.target !== target) return;
      if (err.code === ErrorCode.NOT_FOUND) {
        this.onEnded(null); // ended between the push and the join
        return;
      }
      if (err.code === ErrorCode.UNAUTHORIZED && !target.signedIn) {
        this.setWatching(false);
        this.overlay('signin', describeError(err));
        return;
      }
      const final = err.code === ErrorCode.FORBIDDEN || err.code === ErrorCode.INVALID;
      this.overlay('error', describeError(err), { retry: !final });
    }
  }

  /** The player's connection state: a drop restarts ICE (same connection, same place
   * in the room); only a restart that cannot help rejoins from scratch. */
  onMediaState(state) {
    this.connection.media(state);
    clearTimeout(this.disconnectedTimer);
    if (state === 'connected') {
      this.restartsThisDrop = 0;
    } else if (state === 'disconnected') {
      this.disconnectedTimer = setTimeout(() => {
        if (this.player.pc?.connectionState === 'disconnected') this.recover();
      }, DISCONNECTED_RESTART_MS);
    } else if (state === 'failed') {
      this.recover();
    }
  }

  /** The page's socket is back (a new one): resume the held join on the same peer
   * connection (the count, the chat and the picture go on); else join again. */
  async reconnected() {
    this.socketDown = false;
    const target = this.target;
    if (target && !target.isSelf && this.live && this.player.pc) {
      const reply = await this.player.resume();
      if (this.target !== target) return;
      if (reply) {
        this.restartsThisDrop = 0;
        this.live = reply.live;
        this.setViewers(reply.viewers);
        this.likes.open(reply.live, reply.likes ?? 0, { signedIn: target.signedIn });
        if (this.root.dataset.overlay === 'connecting') this.overlay(null);
        // lines and gifts sent while the socket was away
        this.chat.open(reply.live, { creator: false });
        this.gifts.board.open(reply.live);
        this.watch({ rejoin: false }); // the live:watch subscription is the socket's
        return;
      }
    }
    this.watch({ rejoin: true });
  }

  /** Restart ICE (rtc:restart); rejoin when the server refuses it or restarts ran out.
   * `fresh`: a new network event, whose restarts are counted anew. While the page's
   * socket is down nothing is asked: its return resumes and restarts (reconnected). */
  async recover({ fresh = false } = {}) {
    if (!this.live || !this.target || this.target.isSelf || !this.player.pc) return;
    if (this.socketDown) return;
    if (fresh) this.restartsThisDrop = 0;
    if (this.restartsThisDrop >= MAX_RESTARTS) {
      if (this.player.pc.connectionState === 'failed') this.rejoin();
      return;
    }
    this.restartsThisDrop += 1;
    const restarted = await this.player.restartIce();
    // refused because the socket dropped meanwhile: its return resumes (reconnected)
    if (restarted === false && !this.socketDown) this.rejoin();
  }

  rejoin() {
    if (!this.live || !this.target || this.target.isSelf) return;
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
    this.quality.hide();
    this.chat.close();
    this.closeGifts();
    this.likes.close();
    this.viewerList.close();
    this.nav.hide();
    this.setWatching(false);
    this.live = null;
    const why = ENDED_BECAUSE[reason]?.(name) ?? '';
    const next = !this.target.isSelf ? ' This page shows their next LIVE as soon as it starts.' : '';
    this.ui['live-ended-detail'].textContent = `${why}${next}`.trim();
    this.paint('live-ended');
  }

  // --- gifts ------------------------------------------------------------------------

  /** The board and gift lines for everyone in the live; the tray for signed-in viewers. */
  openGifts(live, { viewer }) {
    this.gifts.panel.hidden = false;
    this.gifts.board.open(live);
    this.gifts.lines.open(live);
    if (viewer) this.gifts.tray.open(live, this.target.user);
    else this.gifts.tray.close();
    this.ui['gift-signin'].hidden = this.target.signedIn || this.target.isSelf;
    this.paintGiftToggle();
  }

  /**
   * The rail's Gift button goes with the tray: none while gift:status is asked nor
   * where the creator cannot receive gifts (under 18, short of the follower threshold).
   * Signed out it stays: it opens "Sign in to send gifts".
   */
  paintGiftToggle() {
    if (!this.gifts) return; // the tray is being built
    const toggle = this.ui['gift-toggle'];
    const trayless = Boolean(this.target?.signedIn) && this.gifts.tray.root.hidden;
    toggle.hidden = trayless;
    if (trayless && this.gifts.panel.dataset.open === 'true') this.toggleGifts(false);
  }

  closeGifts() {
    this.toggleGifts(false);
    this.gifts.panel.hidden = true;
    this.gifts.tray.close();
    this.gifts.board.close();
    this.gifts.lines.close();
  }

  /** The tray's sheet on a phone (slides up over the video); open = undefined toggles. */
  toggleGifts(open) {
    const panel = this.gifts.panel;
    const next = open ?? panel.dataset.open !== 'true';
    panel.dataset.open = String(next);
    this.ui['gift-toggle'].setAttribute('aria-expanded', String(next));
    if (next) this.viewerList.close();
  }

  // --- sharing ------------------------------------------------------------------------

  async share() {
    const url = new URL(profilePath(this.target.user.username), location.origin).href;
    const dm = this.target.signedIn && this.onShareDm ? () => {
      this.fullscreen(false);
      this.onShareDm();
    } : null;
    try {
      await navigator.clipboard.writeText(url);
      this.toast('Link copied.', { action: dm && ['Send in a message', dm] });
    } catch {
      // No clipboard (an insecure origin, a denied permission): the link to copy by hand.
      this.toast(url, { action: dm && ['Send in a message', dm] });
    }
  }

  // --- painting -------------------------------------------------------------------

  /** Show one of live-player, offline-state, live-ended. */
  paint(part) {
    for (const id of ['live-player', 'offline-state', 'live-ended']) this.ui[id].hidden = id !== part;
  }

  /** A viewer's stream is showing (or connecting): full screen on a phone. */
  setWatching(on) {
    if (on) this.root.dataset.watching = 'true';
    else delete this.root.dataset.watching;
    this.connection.watching(on);
    this.paintFullscreen();
  }

  fullscreen(on) {
    if (on) delete this.root.dataset.minimized;
    else this.root.dataset.minimized = 'true';
    this.paintFullscreen();
  }

  paintFullscreen() {
    const watching = this.root.dataset.watching === 'true';
    const minimized = this.root.dataset.minimized === 'true';
    this.ui['enter-fullscreen'].hidden = !(watching && minimized);
    this.ui['exit-fullscreen'].hidden = !watching || minimized;
    document.documentElement.classList.toggle('watching-live', watching && !minimized);
  }

  /** Signed out: the chat reads but asks to sign in to write. */
  paintSignedOut() {
    const signedIn = this.target.signedIn;
    this.ui['chat-form'].hidden = !signedIn;
    this.ui['chat-signin'].hidden = signedIn;
  }

  paintOffline() {
    const { user, isSelf, signedIn } = this.target;
    this.live = null;
    this.player.close();
    this.quality.hide();
    this.chat.close();
    this.closeGifts();
    this.likes.close();
    this.nav.hide();
    this.setWatching(false);
    this.ui['offline-detail'].textContent = isSelf
      ? "You're not live. Go LIVE from your studio and your viewers will see you here."
      : signedIn
        ? `This page switches to the stream as soon as ${handle(user.username)} goes live.`
        : `This page switches to the stream as soon as ${handle(user.username)} goes live. Sign in to be told when they do.`;
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
    this.root.dataset.overlay = kind ?? 'none';
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

  /** A short line over the video; with signIn, a Sign in link after it; with
   * action [label, fn], a button. */
  toast(text, { signIn = false, action = null } = {}) {
    const node = this.ui['watch-toast'];
    const next = `/?next=${encodeURIComponent(profilePath(this.target?.user.username ?? ''))}#signin`;
    node.replaceChildren(el('span', { text, testid: 'watch-toast-text' }),
      signIn ? el('a', { class: 'btn btn-sm btn-primary', href: next, testid: 'watch-toast-signin',
        text: 'Sign in' }) : null,
      action ? el('button', { type: 'button', class: 'btn btn-sm btn-ghost', testid: 'watch-toast-action',
        text: action[0], on: { click: () => { node.hidden = true; action[1](); } } }) : null);
    node.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => { node.hidden = true; }, TOAST_MS);
  }
}
