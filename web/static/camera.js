/**
 * The creator's camera and microphone: open them (a chosen device or the
 * default one) and list what the browser has. Failures become GoliveErrors
 * worded for people, so pages show them like any server error.
 */

import { ErrorCode, GoliveError } from './errors.js';

// Ask for 720p at most: the server encodes once per room at its own bitrate,
// so a larger capture only costs the creator's CPU.
const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };

const MESSAGES = {
  NotAllowedError: 'Allow camera and microphone access for this site to go live.',
  SecurityError: 'Allow camera and microphone access for this site to go live.',
  NotFoundError: 'No camera was found. Connect one and try again.',
  NotReadableError: 'Your camera or microphone is in use by another app.',
  AbortError: 'Your camera could not start. Try again.',
};

function deviceError(err) {
  const message = MESSAGES[err?.name]
    ?? `Your camera could not be opened${err?.message ? ` (${err.message})` : ''}.`;
  return new GoliveError(ErrorCode.UNAVAILABLE, message, { reason: err?.name ?? 'unknown' });
}

function constraint(deviceId, base) {
  return deviceId ? { ...base, deviceId: { exact: deviceId } } : base;
}

/**
 * Open the camera and the microphone.
 *
 * @param {object} [choice] {videoId, audioId}: device ids from listDevices(); '' for the default.
 *   A chosen device that has gone away falls back to the default one.
 * @returns {Promise<MediaStream>} one video track and, when a microphone exists, one audio track
 * @throws {GoliveError} `unavailable` with a message naming what to do (permission, no camera...)
 */
export async function openCamera({ videoId = '', audioId = '' } = {}) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new GoliveError(ErrorCode.UNAVAILABLE,
      'This browser cannot use a camera here (it needs HTTPS or localhost).');
  }
  const get = (video, audio) => navigator.mediaDevices.getUserMedia({ video, audio });
  try {
    return await get(constraint(videoId, VIDEO), constraint(audioId, true));
  } catch (err) {
    if (err?.name === 'OverconstrainedError' && (videoId || audioId)) {
      return openCamera(); // the chosen device was unplugged
    }
    if (err?.name === 'NotFoundError') {
      // No microphone: go live with video only rather than not at all.
      try { return await get(constraint(videoId, VIDEO), false); } catch { /* report the first */ }
    }
    throw deviceError(err);
  }
}

/**
 * The cameras and microphones, with labels once the page was granted access
 * (call after openCamera()): {cameras: [{id, label}], mics: [{id, label}]}.
 */
export async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const pick = (kind, fallback) => devices
    .filter((d) => d.kind === kind && d.deviceId)
    .map((d, i) => ({ id: d.deviceId, label: d.label || `${fallback} ${i + 1}` }));
  return { cameras: pick('videoinput', 'Camera'), mics: pick('audioinput', 'Microphone') };
}

/** The device id a live track comes from ('' when the browser does not say). */
export function deviceOf(track) {
  return track?.getSettings?.().deviceId ?? '';
}
