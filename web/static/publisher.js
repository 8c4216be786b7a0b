/**
 * The creator's side of a live: one peer connection sending the camera and
 * microphone to the server, negotiated through `live:start` (non-trickle: the
 * offer carries every ICE candidate), ended with `live:end`.
 *
 *   const publisher = new Publisher(sharedSocket, { onConnectionState });
 *   const { live } = await publisher.start(stream, 'Cooking!');
 *   publisher.replaceTracks(otherStream);   // switched camera, no renegotiation
 *   await publisher.start(stream, title, { resumeOf: liveId });   // after a reconnect
 *   await publisher.end();
 *
 * Server pushes (room:state, live:ended) are the page's business.
 */

import { ErrorCode, GoliveError } from './errors.js';
import { closePeerConnection, iceGatheringComplete, newPeerConnection } from './rtc.js';

/** live:start waits for the server's peer connection to answer (ICE gathering included). */
export const START_TIMEOUT_MS = 20000;

export class Publisher {
  /**
   * @param {SharedSocket} socket
   * @param {object} [handlers]
   * @param {(state: string) => void} [handlers.onConnectionState] the pc's connectionState
   *   (connecting, connected, disconnected, failed) of the current attempt
   */
  constructor(socket, { onConnectionState } = {}) {
    this.socket = socket;
    this.onConnectionState = onConnectionState ?? (() => {});
    this.pc = null;
    /** The live as the server last answered it ({live_id, title, started_at...}), or null. */
    this.live = null;
    /** Asked (rtc:config) before each offer; [] until then (no public STUN by default). */
    this.iceServers = [];
    /** The server's ice_transport_policy: 'relay' makes the browser use TURN only. */
    this.iceTransportPolicy = 'all';
    /** Counts start() and close() calls: a start whose rtc:config answered after
     * another of them gives up. */
    this.attempts = 0;
    /** Set by end() so that a live:start still in flight is ended when it answers. */
    this.ending = false;
    /** An ICE restart (restartIce) is in flight; how many were asked. */
    this.restarting = false;
    this.restarts = 0;
  }

  /**
   * Go live with `stream`, or resume the live this account has in its grace
   * period (after a reload or a reconnect): the server answers `resumed: true`.
   * `resumeOf` names that live: if it ended meanwhile the server refuses
   * (`not_found`, reason `live_ended`) rather than start a new one.
   * `signedInOnly`: a new live that signed-out visitors may not watch. `record`: record
   * it for a replay (the server keeps recording a resumed one).
   *
   * @returns {Promise<object|null>} the live:start ack ({live, viewers, resumed?}),
   *   or null when close()/end() was called meanwhile
   * @throws {GoliveError} the server's refusal (`conflict` when live from another
   *   tab, `invalid` for a bad title...) or a failed negotiation
   */
  async start(stream, title, { resumeOf = null, signedInOnly = false, record = false } = {}) {
    this.ending = false;
    const attempt = ++this.attempts;
    closePeerConnection(this.pc);
    this.pc = null;
    await this.askIceConfig();
    if (attempt !== this.attempts) return null; // closed, ended or restarted meanwhile
    const pc = this.pc = newPeerConnection(this.iceServers, this.iceTransportPolicy);
    const [video] = stream.getVideoTracks();
    const [audio] = stream.getAudioTracks();
    if (!video) throw new GoliveError(ErrorCode.INVALID, 'There is no camera picture to send.');
    // The server takes exactly one video and one audio section; without a
    // microphone the audio section is there but silent.
    pc.addTransceiver(video, { direction: 'sendonly', streams: [stream] });
    pc.addTransceiver(audio ?? 'audio', { direction: 'sendonly', streams: [stream] });
    pc.onconnectionstatechange = () => {
      if (this.pc === pc) this.onConnectionState(pc.connectionState);
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc);
      if (this.pc !== pc) return null;
      const payload = { title, offer: pc.localDescription.sdp, signed_in_only: signedInOnly, record };
      if (resumeOf) payload.resume_of = resumeOf;
      const reply = await this.socket.ask('live:start', payload, { timeout: START_TIMEOUT_MS });
      this.live = reply.live;
      if (this.ending) {
        await this.end(); // End was pressed while the server was starting it
        return null;
      }
      if (this.pc !== pc) return null; // hidden or restarted while the server answered
      await pc.setRemoteDescription({ type: 'answer', sdp: reply.answer });
      return reply;
    } catch (err) {
      if (this.pc === pc) {
        closePeerConnection(pc);
        this.pc = null;
      }
      if (err instanceof GoliveError) throw err;
      // The browser refused an SDP: nobody can watch this live, so do not leave it listed.
      if (this.live) await this.end().catch(() => {});
      throw new GoliveError(ErrorCode.UNAVAILABLE,
        `Your browser could not connect to the server (${err?.message ?? err}).`);
    }
  }

  /**
   * Restart ICE on the publishing connection (the network changed or the media
   * dropped): an offer with new ICE credentials through `live:restart`, from this
   * socket or a new one after a reconnect, within the grace period. The same
   * connection, tracks and live stay; the viewers never rejoin.
   *
   * @returns {Promise<boolean|null>} true once the answer is applied, false when the
   *   server refused or the exchange failed (resume with start() then), null when
   *   there is nothing to restart or one is already running
   */
  async restartIce() {
    const pc = this.pc;
    if (!pc || !this.live || this.restarting) return null;
    this.restarting = true;
    this.restarts += 1;
    try {
      await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
      await iceGatheringComplete(pc);
      if (this.pc !== pc) return null;
      const reply = await this.socket.ask('live:restart', { offer: pc.localDescription.sdp },
        { timeout: START_TIMEOUT_MS });
      if (this.pc !== pc) return null;
      await pc.setRemoteDescription({ type: 'answer', sdp: reply.answer });
      return true;
    } catch {
      if (this.pc === pc && pc.signalingState === 'have-local-offer') {
        await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
      }
      return this.pc === pc ? false : null;
    } finally {
      this.restarting = false;
    }
  }

  /**
   * Ask the server for its ICE servers (with a fresh TURN credential for this
   * user) before an offer: its candidates must include the TURN relay's. A
   * server that does not answer leaves the ones asked last (or none).
   */
  async askIceConfig() {
    try {
      const reply = await this.socket.ask('rtc:config', {}, { timeout: START_TIMEOUT_MS });
      this.iceServers = reply.ice_servers ?? this.iceServers;
      this.iceTransportPolicy = reply.ice_transport_policy ?? this.iceTransportPolicy;
    } catch {
      // an older server, or a dropped socket: live:start itself will tell
    }
  }

  /** Send other camera/microphone tracks on the same connection (a device switch). */
  async replaceTracks(stream) {
    if (!this.pc) return;
    for (const transceiver of this.pc.getTransceivers()) {
      const kind = transceiver.receiver.track?.kind;
      const [track] = kind === 'audio' ? stream.getAudioTracks() : stream.getVideoTracks();
      if (track && transceiver.sender.track !== track) await transceiver.sender.replaceTrack(track);
    }
  }

  /** End the live for everyone; the connection closes. Not live: nothing happens. */
  async end() {
    this.ending = true;
    const live = this.live;
    this.close();
    this.live = null;
    if (!live) return;
    try {
      await this.socket.ask('live:end', {});
    } catch (err) {
      if (err.code !== ErrorCode.NOT_FOUND) throw err; // already over (grace expired...)
    }
  }

  /**
   * Close the connection but leave the live on the server: it waits out its
   * grace period for start() from a reload or a reconnect. Safe to call twice.
   */
  close() {
    this.attempts += 1;
    closePeerConnection(this.pc);
    this.pc = null;
  }

  /** The server ended the live (live:ended): forget it and close. */
  ended() {
    this.live = null;
    this.close();
  }
}
