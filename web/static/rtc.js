/**
 * WebRTC helpers shared by the studio (sending) and the profile's player
 * (receiving). Signaling is non-trickle: the SDP sent over Socket.IO carries
 * every ICE candidate, so each side waits for gathering to complete first.
 */

/** Chromium gathers host candidates in a few ms; a STUN server that never answers
 * would hold gathering ~10 s, so after this we send the candidates we have. */
export const ICE_GATHER_TIMEOUT_MS = 5000;

/**
 * A peer connection with the server's ICE servers (`[]` until the server has
 * named them: an empty list keeps Chromium off public STUN servers; a TURN
 * entry carries a credential made for this user).
 * max-bundle puts audio and video on one transport, as the server does.
 * `transportPolicy` is the server's `ice_transport_policy`: only 'relay' is
 * passed on (TURN only, GOLIVE_ICE_TRANSPORT_POLICY=relay); anything else
 * leaves the browser's default (every candidate).
 */
export function newPeerConnection(iceServers = [], transportPolicy = 'all') {
  const config = { iceServers, bundlePolicy: 'max-bundle' };
  if (transportPolicy === 'relay') config.iceTransportPolicy = 'relay';
  return new RTCPeerConnection(config);
}

/**
 * Resolve once `pc` has gathered all its ICE candidates (after
 * setLocalDescription), or after `timeout` ms with those gathered so far.
 * Returns true when gathering completed, false on the timeout.
 */
export function iceGatheringComplete(pc, { timeout = ICE_GATHER_TIMEOUT_MS } = {}) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (complete) => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve(complete);
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(true); };
    // A null candidate is the end of gathering too (some builds skip the state event).
    const onCandidate = (event) => { if (!event.candidate) done(true); };
    const timer = setTimeout(() => done(false), timeout);
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

/**
 * Ask Chromium to play a receiver's media as soon as it can. Without this its
 * jitter buffer grew from 25 to 120 ms over 30 s of a live (measured here,
 * headless Chromium on loopback).
 */
export function lowLatency(receiver) {
  try {
    if ('jitterBufferTarget' in receiver) receiver.jitterBufferTarget = 0;
    receiver.playoutDelayHint = 0; // older name; harmless where unknown
  } catch {
    // A browser that refuses the hint plays with its default buffering.
  }
}

/** Close a peer connection (null-safe, safe to call twice); event handlers are dropped. */
export function closePeerConnection(pc) {
  if (!pc) return;
  pc.onconnectionstatechange = null;
  pc.ontrack = null;
  if (pc.signalingState !== 'closed') pc.close();
}

/** Stop every track of a MediaStream (null-safe): the camera light goes off. */
export function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}
