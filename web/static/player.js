/**
 * The viewer's side of a live: `room:join` brings the server's offer, the
 * browser answers through `rtc:answer` (non-trickle), and the tracks play in
 * a <video> with low-latency receivers.
 *
 *   const player = new LivePlayer(sharedSocket, videoElement, { onConnectionState });
 *   const { live, viewers } = await player.join(creatorId);
 *   await player.resume();   // the page's socket came back: take the join back
 *   await player.leave();
 */

import { closePeerConnection, iceGatheringComplete, lowLatency, newPeerConnection } from './rtc.js';

/** room:join and rtc:answer wait for the server's peer connection (ICE gathering included). */
export const JOIN_TIMEOUT_MS = 15000;

export class LivePlayer {
  /**
   * @param {SharedSocket} socket
   * @param {HTMLVideoElement} video where the live plays (muted autoplay is the page's choice)
   * @param {object} [handlers]
   * @param {(state: string) => void} [handlers.onConnectionState] connectionState of the current pc
   */
  constructor(socket, video, { onConnectionState } = {}) {
    this.socket = socket;
    this.video = video;
    this.onConnectionState = onConnectionState ?? (() => {});
    this.pc = null;
    /** The live being watched ({live_id, creator_id, title, started_at}), or null. */
    this.live = null;
    this.joins = 0;
    /** The video quality asked for: 'auto' or a rendition's height ('360'); kept across joins. */
    this.quality = 'auto';
    /** An ICE restart (restartIce) is in flight; how many were asked on this page. */
    this.restarting = false;
    this.restarts = 0;
    this.restartRun = 0;
    /** The join's resume token (room:join / room:resume acks): memory only, used once. */
    this.resumeToken = null;
  }

  /**
   * Watch `creatorId`'s live (again: a second join from the same page replaces
   * the connection).
   *
   * @returns {Promise<object|null>} the room:join ack ({live, viewers}), or null
   *   when close() or another join() came first (then nothing is thrown either)
   * @throws {GoliveError} not_found (not live), forbidden (blocked), invalid (your own live)...
   */
  async join(creatorId) {
    closePeerConnection(this.pc);
    this.pc = null;
    const run = ++this.joins;
    let reply;
    try {
      reply = await this.socket.ask('room:join', { user_id: creatorId, quality: this.quality },
        { timeout: JOIN_TIMEOUT_MS });
    } catch (err) {
      if (run !== this.joins) return null; // superseded: its failure is no news
      throw err;
    }
    if (run !== this.joins) return null;
    const pc = this.pc = newPeerConnection(reply.ice_servers ?? [], reply.ice_transport_policy);
    this.live = reply.live;
    this.resumeToken = reply.resume_token ?? null;
    const stream = new MediaStream();
    pc.ontrack = ({ track, receiver }) => {
      lowLatency(receiver);
      stream.addTrack(track);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
      this.video.play().catch(() => {}); // muted autoplay is allowed without a gesture
    };
    pc.onconnectionstatechange = () => {
      if (this.pc === pc) this.onConnectionState(pc.connectionState);
    };
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: reply.offer });
      await pc.setLocalDescription(await pc.createAnswer());
      await iceGatheringComplete(pc);
      if (run !== this.joins) return null;
      await this.socket.ask('rtc:answer', { live_id: reply.live.live_id, sdp: pc.localDescription.sdp },
        { timeout: JOIN_TIMEOUT_MS });
    } catch (err) {
      if (run !== this.joins) return null;
      this.close();
      throw err;
    }
    return run === this.joins ? reply : null;
  }

  /**
   * Restart ICE on the current connection (the network changed or the media dropped):
   * `rtc:restart` brings the server's offer with new ICE credentials, the answer goes
   * back through `rtc:answer`. The same peer connection, tracks, room membership,
   * viewer count and quality pin stay; only the network path is found again.
   *
   * @returns {Promise<boolean|null>} true once the answer is sent (the connection state
   *   tells the rest), false when the server refused or the exchange failed (rejoin
   *   then), null when there is nothing to restart or a restart is already running
   */
  async restartIce({ force = false } = {}) {
    const pc = this.pc;
    const live = this.live;
    if (!pc || !live || (this.restarting && !force)) return null;
    // `force` (after a resume): a restart asked over the dead socket never gets its
    // answer; this one replaces it, and the old one's late outcome is ignored.
    const run = ++this.restartRun;
    const current = () => this.pc === pc && this.restartRun === run;
    this.restarting = true;
    this.restarts += 1;
    try {
      const reply = await this.socket.ask('rtc:restart', { live_id: live.live_id },
        { timeout: JOIN_TIMEOUT_MS });
      if (!current()) return null;
      await pc.setRemoteDescription({ type: 'offer', sdp: reply.offer });
      await pc.setLocalDescription(await pc.createAnswer());
      await iceGatheringComplete(pc);
      if (!current()) return null;
      await this.socket.ask('rtc:answer', { live_id: live.live_id, sdp: pc.localDescription.sdp },
        { timeout: JOIN_TIMEOUT_MS });
      return true;
    } catch {
      return current() ? false : null;
    } finally {
      if (this.restartRun === run) this.restarting = false;
    }
  }

  /**
   * The page's socket dropped and a new one is up: take the join back (`room:resume`
   * with the join's token; the server held the peer connection, the place in the count
   * and the quality pin for GOLIVE_VIEWER_RESUME_GRACE), then restart ICE over the new
   * socket on the same peer connection (the network under it may have changed too).
   *
   * @returns {Promise<object|null>} the room:resume ack once the join is back (the ICE
   *   restart's outcome then shows in the connection state), or null when there is
   *   nothing to resume or the server refused (not_found: expired, unknown, the live
   *   ended, another node): join again then
   */
  async resume() {
    const pc = this.pc;
    const live = this.live;
    const token = this.resumeToken;
    if (!pc || !live || !token) return null;
    this.resumeToken = null; // used once, whatever the answer
    let reply;
    try {
      reply = await this.socket.ask('room:resume', { live_id: live.live_id, token },
        { timeout: JOIN_TIMEOUT_MS });
    } catch {
      return null;
    }
    if (this.pc !== pc) return null;
    this.resumeToken = reply.resume_token ?? null;
    const restarted = await this.restartIce({ force: true });
    return restarted === false ? null : reply;
  }

  /**
   * Pin the video to a rendition ('360') or give it back to the link ('auto'); the
   * picture changes at that rendition's next keyframe, on the same track.
   *
   * @returns {Promise<object|null>} the room:quality ack, or null when not watching
   */
  async setQuality(quality) {
    this.quality = quality;
    if (!this.live) return null;
    return this.socket.ask('room:quality', { live_id: this.live.live_id, quality });
  }

  /** Stop watching: tell the server (best effort) and close the connection. */
  async leave() {
    const live = this.live;
    this.close();
    if (!live) return;
    try {
      await this.socket.ask('room:leave', { live_id: live.live_id });
    } catch {
      // Already gone on the server (the live ended, the socket dropped): nothing to undo.
    }
  }

  /** Close the connection and empty the video. Safe to call twice. */
  close() {
    this.joins += 1; // a join() in flight drops its answer
    closePeerConnection(this.pc);
    this.pc = null;
    this.live = null;
    this.resumeToken = null;
    this.video.pause();
    this.video.srcObject = null;
  }
}
