/**
 * The creator studio (/studio): pick a camera and a microphone, check the
 * muted preview, give the live a title, Go LIVE and End LIVE. While live it
 * shows the status, the viewer count (room:state), the elapsed time, the
 * gifts (each one as it comes, the top gifters and the diamonds earned) and
 * the chat with its moderation (chat.js), so a creator runs the LIVE from
 * here alone, on a phone too; the title can be changed while live
 * (live:title). Banned and muted people and the moderators are listed with
 * their undo (studio-moderation.js). Before going live it shows how many
 * people nudged you (nudge-studio.js). While live, a badge over the preview shows
 * the uplink as the server receives it (uplink.js, the `live:uplink` push).
 *
 * Staying on air: a socket that reconnects, a connection that fails, or a
 * reload of this tab (remembered in sessionStorage) calls live:start again,
 * which the server takes as a resume while the live is in its grace period.
 * A live running in another tab is a `conflict`, shown as such. Back after the
 * grace period, the resume names the live that was on (resume_of) and the
 * server answers that it ended: the studio says so and offers Go LIVE for a
 * new one (never a silent new LIVE with an empty chat and board).
 *
 * A LIVE published by an encoder (WHIP: OBS, `golive whip`) is run from here too: on
 * load (live:watch on yourself, `via: "whip"`) or on its `live:started` push, the
 * studio shows it on air "via WHIP/OBS" (no preview: a placeholder), with its chat,
 * viewer count, gifts and uplink, and End LIVE ends it (live:end).
 *
 * Someone too young to go LIVE (GOLIVE_LIVE_MIN_AGE, 18) is told before they
 * try: /api/me's `go_live` holds the refusal live:start would answer, shown
 * above a disabled Go LIVE (a refusal from live:start itself does the same).
 */

import { api, segment } from './api.js';
import { deviceOf, listDevices, openCamera } from './camera.js';
import { ChatPanel } from './chat.js';
import { byTestId, el, hideError, setBusy, showError } from './dom.js';
import { ErrorCode, GoliveError, describeError } from './errors.js';
import { formatCount, formatDuration, profilePath } from './format.js';
import { GiftBoard } from './gift-board.js';
import { GiftLines } from './gift-lines.js';
import { renderHeader } from './header.js';
import { NudgePanel } from './nudge-studio.js';
import { Publisher } from './publisher.js';
import { stopStream } from './rtc.js';
import { currentUser, onSessionChange } from './session.js';
import { SharedSocket } from './socket.js';
import { ModerationLists } from './studio-moderation.js';
import { StreamKeyPanel } from './stream-key.js';
import { UplinkBadge } from './uplink.js';

/** sessionStorage (this tab only): the live this tab was sending when the page went away. */
const RESUME_KEY = 'golive.studio.resume';
/** Waits before each try to get back on air (~25 s in all). Until the server has dropped
 * our previous connection (5 s of silence, 15 s if it never connected) it answers
 * `conflict`; the live itself waits 10 s (GOLIVE_LIVE_GRACE) after that. */
const RESUME_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 10000];
// New connections tried to reach the node running this creator's live (reason other_node).
const MAX_HOPS = 12;
let hops = 0; // since the last start that got through
const isOnOtherNode = (err) => err?.code === ErrorCode.CONFLICT
  && err.reason === 'other_node';

const STATUS = {
  idle: 'Offline',
  connecting: 'Connecting…',
  live: 'LIVE',
  reconnecting: 'Reconnecting…',
  ending: 'Ending…',
  ended: 'Ended',
};
const ON_AIR = new Set(['connecting', 'live', 'reconnecting', 'ending']);

const ENDED_BECAUSE = {
  ended_by_creator: 'You ended your LIVE.',
  creator_left: 'Your LIVE ended: the connection was lost for too long.',
  server_shutdown: 'Your LIVE ended: the server restarted.',
  publish_failed: 'Your LIVE ended: the server could not receive your video.',
  node_lost: 'Your LIVE ended: its server stopped and you did not get back on air in time.',
};

const ui = Object.fromEntries([
  'studio-signed-out', 'studio', 'preview', 'studio-live-badge', 'elapsed-pill', 'elapsed',
  'studio-viewers', 'viewers-pill', 'camera-off', 'camera-status', 'camera-start', 'studio-status', 'studio-form',
  'title-input', 'camera-select', 'mic-select', 'studio-refusal', 'studio-notice', 'studio-error', 'go-live',
  'end-live', 'my-live-page', 'title-save', 'studio-chat', 'signed-in-only', 'record-live',
  'recording-notice',
].map((id) => [id, byTestId(id)]));

const me = currentUser();
const socket = new SharedSocket();
const publisher = new Publisher(socket, { onConnectionState });
const giftBoard = new GiftBoard(socket, byTestId('gift-board'));
const giftLines = new GiftLines(socket, byTestId('studio-gift-list'), { clear: true });
const moderation = new ModerationLists(socket);
const uplink = new UplinkBadge(byTestId('uplink-badge'));
const chat = new ChatPanel(socket, byTestId('chat-panel'), {
  onModerated: () => moderation.refresh() });
/** The camera and microphone, while open. */
let stream = null;
let state = 'idle';
let clock = null;
let resumeTimer = null;
let resumes = 0;
/** Bumped by each goLive(): only the latest attempt's answer counts. */
let starts = 0;
/** The live an encoder publishes (WHIP), shown and run from here; null otherwise. */
let encoderLive = null;
/** The live this studio runs: its own, or the encoder's. */
const currentLiveId = () => (publisher.live ?? encoderLive)?.live_id;
/** Why this account may not go LIVE (a GoliveError), or null. */
let refusal = null;

// --- status ------------------------------------------------------------------------

function setState(next) {
  state = next;
  const status = ui['studio-status'];
  status.dataset.state = next;
  status.textContent = next === 'live' && encoderLive ? 'LIVE via WHIP/OBS' : STATUS[next];
  const onAir = ON_AIR.has(next);
  ui['go-live'].hidden = onAir;
  ui['end-live'].hidden = !onAir;
  ui['end-live'].disabled = next === 'ending';
  // While live, Save title renames the LIVE for everyone watching (live:title).
  ui['title-save'].hidden = next !== 'live';
  ui['signed-in-only'].disabled = onAir; // chosen when going LIVE
  ui['studio-live-badge'].hidden = next !== 'live';
  ui['viewers-pill'].hidden = !onAir;
  ui['elapsed-pill'].hidden = !onAir;
  if (!onAir) uplink.hide();
  document.title = next === 'live' ? '● LIVE · Studio · golive' : 'Studio · golive';
}

/** This account may not go LIVE: say why and keep Go LIVE disabled. */
function refuse(err) {
  refusal = err;
  ui['studio-refusal'].textContent = describeError(err);
  ui['studio-refusal'].hidden = false;
  for (const id of ['go-live', 'title-input', 'camera-select', 'mic-select']) ui[id].disabled = true;
}

/** A refusal that no retry changes (the creator's age), as opposed to a transient one. */
function isAgeRefusal(err) {
  return err?.code === ErrorCode.FORBIDDEN && err.reason === 'under_age';
}

function notice(text) {
  ui['studio-notice'].textContent = text;
  ui['studio-notice'].hidden = !text;
}

function setViewers(count) {
  ui['studio-viewers'].textContent = formatCount(count);
}

function startClock(startedAt) {
  clearInterval(clock);
  const tick = () => { ui.elapsed.textContent = formatDuration(Date.now() / 1000 - startedAt); };
  tick();
  clock = setInterval(tick, 1000);
}

function stopClock() {
  clearInterval(clock);
  clock = null;
}

// --- camera and microphone -----------------------------------------------------------

function cameraOff(text, { canStart = true } = {}) {
  ui['camera-off'].hidden = false;
  ui['camera-off'].dataset.kind = canStart ? 'off' : 'connecting';
  ui['camera-status'].textContent = text;
  ui['camera-start'].hidden = !canStart;
}

function fill(select, devices, current, none) {
  select.replaceChildren(...(devices.length
    ? devices.map((d) => el('option', { value: d.id, text: d.label }))
    : [el('option', { value: '', text: none })]));
  if (devices.some((d) => d.id === current)) select.value = current;
  select.disabled = !devices.length;
}

async function fillDevices() {
  const { cameras, mics } = await listDevices();
  fill(ui['camera-select'], cameras, deviceOf(stream?.getVideoTracks()[0]), 'No camera found');
  fill(ui['mic-select'], mics, deviceOf(stream?.getAudioTracks()[0]), 'No microphone found');
}

/** Show (and, when live, send) `next` instead of the current stream. */
async function useStream(next) {
  await publisher.replaceTracks(next);
  const old = stream;
  stream = next;
  ui.preview.srcObject = next;
  if (old && old !== next) stopStream(old);
  ui['camera-off'].hidden = true;
  next.getVideoTracks()[0]?.addEventListener('ended', () => {
    if (stream === next) cameraOff('Your camera stopped. Turn it back on to keep streaming.');
  });
}

/** Open the devices chosen in the selects (the defaults at first). False when it failed. */
async function startCamera() {
  cameraOff('Opening your camera…', { canStart: false });
  try {
    await useStream(await openCamera({
      videoId: ui['camera-select'].value, audioId: ui['mic-select'].value,
    }));
  } catch (err) {
    cameraOff(describeError(err));
    return false;
  }
  // Labels are only given once the page may use the devices, so list them now.
  await fillDevices().catch(() => {});
  return true;
}

function stopCamera() {
  stopStream(stream);
  stream = null;
  ui.preview.srcObject = null;
  cameraOff('Camera off');
}

async function switchDevice() {
  hideError(ui['studio-error']);
  try {
    await useStream(await openCamera({
      videoId: ui['camera-select'].value, audioId: ui['mic-select'].value,
    }));
  } catch (err) {
    showError(ui['studio-error'], err);
  }
  await fillDevices().catch(() => {});
}

// --- going live --------------------------------------------------------------------

/**
 * live:start with the open stream. `resuming`: getting back on air after a
 * reconnect or a reload, retried on refusals that time fixes.
 */
async function goLive(title, { resuming = false, resumeOf = publisher.live?.live_id } = {}) {
  clearTimeout(resumeTimer);
  const run = ++starts;
  if (!resuming) ui.elapsed.textContent = formatDuration(0);
  setState(resuming ? 'reconnecting' : 'connecting');
  let reply;
  try {
    reply = await publisher.start(stream, title, {
      resumeOf: resuming ? resumeOf ?? null : null,
      signedInOnly: ui['signed-in-only'].checked,
      record: ui['record-live'].checked,
    });
  } catch (err) {
    if (run !== starts) return; // a newer attempt (a reconnect during this one) took over
    if (resuming && isEndedWhileAway(err)) {
      endedWhileAway();
      return;
    }
    // The live runs on another node (a reload or a reconnect reached another worker):
    // a new connection, at once, until one reaches it (each is a fresh draw of the
    // kernel's hash: 2 workers, 12 draws miss it once in 4,096).
    if (isOnOtherNode(err) && hops < MAX_HOPS) {
      hops += 1;
      await socket.reopen();
      goLive(title, { resuming, resumeOf });
      return;
    }
    // conflict: the server has not yet noticed our old connection is gone.
    const transient = err.code === ErrorCode.CONFLICT || err.code === ErrorCode.UNAVAILABLE;
    if (resuming && transient && resumes < RESUME_DELAYS_MS.length) {
      resumeTimer = setTimeout(() => goLive(title, { resuming: true }), RESUME_DELAYS_MS[resumes++]);
      return;
    }
    publisher.ended();
    stopClock();
    setState('idle');
    if (isAgeRefusal(err)) {
      refuse(err);
      return;
    }
    showError(ui['studio-error'], err);
    if (err.field === 'title') ui['title-input'].focus();
    return;
  }
  if (!reply || run !== starts) return; // ended, hidden or superseded meanwhile
  hops = 0;
  ui['title-input'].value = reply.live.title;
  showRecording(reply.recording ? 'Recording: the replay will be on your profile.' : '');
  setViewers(reply.viewers ?? 0);
  byTestId('studio-gifts').hidden = false;
  giftBoard.open(reply.live);
  giftLines.open(reply.live);
  ui['studio-chat'].hidden = false;
  chat.open(reply.live, { creator: true }); // a resume only catches up
  startClock(reply.live.started_at);
  if (publisher.pc?.connectionState === 'connected') onConnectionState('connected');
}

function resume() {
  if (!publisher.live || !stream || state === 'ending') return;
  goLive(publisher.live.title, { resuming: true });
}

/** ICE restarts tried for one drop before resuming from scratch; reset once connected. */
const MAX_RESTARTS = 2;
/** 'disconnected' this long (ms) restarts ICE (a short blip recovers on its own first). */
const DISCONNECTED_RESTART_MS = 1500;
let restartsThisDrop = 0;
let disconnectedTimer = null;

/**
 * The network changed or the media dropped: restart ICE on the publishing connection
 * (live:restart, from this socket or a new one within the grace period: the same
 * connection, viewers untouched). Resume with a new connection (live:start) only when
 * the server refuses the restart or restarts ran out.
 */
async function recover({ fresh = false } = {}) {
  if (!publisher.live || !stream || state === 'ending') return;
  if (fresh) restartsThisDrop = 0; // a new network event: its restarts count anew
  const onAir = state === 'live' || state === 'reconnecting'; // not while a start runs
  if (onAir && publisher.pc && restartsThisDrop < MAX_RESTARTS) {
    restartsThisDrop += 1;
    const restarted = await publisher.restartIce();
    if (restarted === true && publisher.live) {
      // perhaps from a new socket: its chat, board and gift lines catch up (as a resume)
      giftBoard.open(publisher.live);
      giftLines.open(publisher.live);
      chat.open(publisher.live, { creator: true });
      // Only the socket dropped (the media path held): the connection stays 'connected'
      // through the restart, so no state change will say we are back.
      if (publisher.pc?.connectionState === 'connected' && state === 'reconnecting') setState('live');
    }
    if (restarted !== false) return; // sent (the pc's state tells the rest), or one runs
  }
  resume();
}

function onConnectionState(pcState) {
  clearTimeout(disconnectedTimer);
  if (pcState === 'connected') {
    resumes = 0;
    restartsThisDrop = 0;
    if (state === 'connecting' || state === 'reconnecting') setState('live');
  } else if (pcState === 'disconnected') {
    if (state === 'live') setState('reconnecting'); // ICE often recovers by itself
    disconnectedTimer = setTimeout(() => {
      if (publisher.pc?.connectionState === 'disconnected') recover();
    }, DISCONNECTED_RESTART_MS);
  } else if (pcState === 'failed') {
    recover();
  }
}

/** The resume came too late: the server ended the live after its grace period. */
function isEndedWhileAway(err) {
  return err?.code === ErrorCode.NOT_FOUND && err.reason === 'live_ended';
}

/** Say the LIVE ended while this tab was away, and offer a new one (Go LIVE). */
function endedWhileAway() {
  clearTimeout(resumeTimer);
  publisher.ended();
  stopClock();
  setState('ended');
  giftLines.close();
  notice('Your LIVE ended while you were away: the connection was lost for too long. '
    + 'Go LIVE to start a new one.');
  ui['go-live'].focus();
}

/**
 * The creator's encoder (WHIP) is on air: run its live from here. The camera closes (the
 * encoder sends the picture); chat, viewers, gifts and the uplink as for a studio live.
 */
function showEncoderLive(live, viewers) {
  if (publisher.live || ON_AIR.has(state)) return; // this tab is going or is live itself
  encoderLive = live;
  hideError(ui['studio-error']);
  notice('');
  stopCamera();
  cameraOff('Your LIVE comes from your encoder (WHIP/OBS): viewers see its picture.',
    { canStart: false });
  ui['camera-off'].dataset.kind = 'off';
  ui['title-input'].value = live.title;
  setState('live');
  setViewers(viewers ?? 0);
  byTestId('studio-gifts').hidden = false;
  giftBoard.open(live);
  giftLines.open(live);
  ui['studio-chat'].hidden = false;
  chat.open(live, { creator: true });
  startClock(live.started_at);
}

/** Follow this creator's own live state (live:started / live:ended): an encoder's LIVE. */
async function watchOwnLive() {
  try {
    const reply = await socket.ask('live:watch', { user_id: me.id });
    if (reply.live && reply.via === 'whip' && !encoderLive) showEncoderLive(reply.live, reply.viewers);
  } catch { /* the push or a reload will tell */ }
}

/** The live is over (ended here or by the server): camera off, say why. */
function finish(reason) {
  clearTimeout(resumeTimer);
  encoderLive = null;
  const lasted = ui.elapsed.textContent;
  publisher.ended();
  stopClock();
  stopCamera();
  setState('ended');
  giftLines.close(); // the board and the lines stay on screen until the next LIVE
  chat.close();
  ui['studio-chat'].hidden = true;
  notice(`${ENDED_BECAUSE[reason] ?? 'Your LIVE ended.'} It lasted ${lasted}.`);
}

ui['studio-form'].addEventListener('submit', async (event) => {
  event.preventDefault();
  if (ON_AIR.has(state) || ui['go-live'].disabled) return;
  hideError(ui['studio-error']);
  notice('');
  setBusy(ui['go-live'], true);
  try {
    if (stream || await startCamera()) {
      resumes = 0;
      await goLive(ui['title-input'].value.trim()); // not retried: a refusal is shown as is
    }
  } finally {
    setBusy(ui['go-live'], false);
    if (refusal) ui['go-live'].disabled = true;
  }
});

ui['end-live'].addEventListener('click', async () => {
  setState('ending');
  clearTimeout(resumeTimer);
  try {
    if (encoderLive) await socket.ask('live:end', {}); // the server ends the encoder's LIVE
    else await publisher.end();
  } catch (err) {
    showError(ui['studio-error'], err); // the server ends it after its grace period anyway
  }
  finish('ended_by_creator');
});

/** Rename the running LIVE: viewers, the profile page and Discover see it at once. */
async function saveTitle() {
  if (state !== 'live') return;
  hideError(ui['studio-error']);
  setBusy(ui['title-save'], true);
  try {
    const { live } = await socket.ask('live:title', { title: ui['title-input'].value.trim() });
    ui['title-input'].value = live.title;
    if (publisher.live) publisher.live.title = live.title; // a resume keeps the new title
    notice('Title saved: your viewers see it now.');
  } catch (err) {
    showError(ui['studio-error'], err);
    if (err.field === 'title') ui['title-input'].focus();
  } finally {
    setBusy(ui['title-save'], false);
  }
}

ui['title-save'].addEventListener('click', saveTitle);
ui['title-input'].addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && state === 'live') {
    event.preventDefault(); // Enter while live saves the title; it does not submit Go LIVE
    saveTitle();
  }
});
ui['camera-start'].addEventListener('click', () => startCamera());
ui['camera-select'].addEventListener('change', switchDevice);
ui['mic-select'].addEventListener('change', switchDevice);
navigator.mediaDevices?.addEventListener?.('devicechange', () => fillDevices().catch(() => {}));

// --- recording (a replay) -------------------------------------------------------------

/** The creator's default: the checkbox as they last left it, in this browser. */
const RECORD_KEY = 'golive.studio.record';
ui['record-live'].checked = localStorage.getItem(RECORD_KEY) === '1';
ui['record-live'].addEventListener('change', () => {
  localStorage.setItem(RECORD_KEY, ui['record-live'].checked ? '1' : '0');
});

function showRecording(text) {
  ui['recording-notice'].textContent = text;
  ui['recording-notice'].hidden = !text;
}

// The recording stopped at the server's size cap; the LIVE goes on, the replay keeps
// what was recorded.
socket.on('live:recording', ({ recording, reason }) => {
  if (!recording && reason === 'size_cap') {
    showRecording('Recording stopped: this LIVE reached the replay size limit. Your LIVE goes on.');
  }
});

socket.on('room:state', ({ live_id: id, viewers }) => {
  if (id && id === currentLiveId()) setViewers(viewers);
});
socket.on('live:uplink', (push) => {
  if (push?.live_id && push.live_id === currentLiveId() && ON_AIR.has(state)) uplink.show(push);
});
socket.on('live:ended', ({ live_id: id, reason }) => {
  if (id && id === currentLiveId() && state !== 'ended') finish(reason);
});
socket.on('live:started', ({ live, via }) => {
  if (live?.creator_id === me?.id && via === 'whip') showEncoderLive(live, 0);
});
socket.on('disconnect', () => {
  if (state === 'live') setState('reconnecting');
});
// A new socket: the server started the grace period for the old one. The same
// connection restarts ICE from it (which ends the grace period); resume otherwise.
socket.on('connect', () => {
  if (me && !refusal) watchOwnLive(); // a new socket is in no room yet
  recover({ fresh: true });
});
// A network change (Wi-Fi to cellular, back online): find the path again at once.
window.addEventListener('online', () => recover({ fresh: true }));
navigator.connection?.addEventListener?.('change', () => recover({ fresh: true }));

window.addEventListener('pagehide', () => {
  // Leave the live in its grace period: a reload of this tab takes it back.
  if (publisher.live) {
    try { sessionStorage.setItem(RESUME_KEY, publisher.live.live_id); } catch { /* no storage */ }
  }
  publisher.close();
  stopStream(stream);
});
window.addEventListener('pageshow', (event) => { if (event.persisted) location.reload(); });

// --- start -------------------------------------------------------------------------

/** /api/me's go_live: null when this account may go LIVE, else why not (a GoliveError). */
async function goLiveRefusal() {
  try {
    const { go_live: verdict } = await api('/api/me');
    return verdict && !verdict.ok ? GoliveError.fromPayload(verdict.error) : null;
  } catch {
    return null; // unknown: Go LIVE will tell
  }
}

async function currentLive() {
  try {
    return (await api(`/api/users/${segment(me.username)}`)).live ?? null;
  } catch {
    return null; // unknown: Go LIVE will tell
  }
}

async function init() {
  renderHeader(undefined, { socket });
  onSessionChange((user) => { if ((user?.id ?? null) !== (me?.id ?? null)) location.reload(); });
  if (!me) {
    ui['studio-signed-out'].hidden = false;
    return;
  }
  ui.studio.hidden = false;
  ui['my-live-page'].href = profilePath(me.username);
  new NudgePanel(socket).open(); // who is waiting for this LIVE, settings, insights
  moderation.open(); // banned and muted people, moderators
  new StreamKeyPanel().open(); // the WHIP URL and stream key, for OBS
  setState('idle');
  let resumeId = null;
  try {
    resumeId = sessionStorage.getItem(RESUME_KEY);
    sessionStorage.removeItem(RESUME_KEY);
  } catch { /* no storage: no resume */ }
  const refused = await goLiveRefusal();
  if (refused) {
    refuse(refused);
    // No camera for a LIVE they cannot start: the preview says so, without a spinner.
    ui['camera-off'].dataset.kind = 'off';
    ui['camera-status'].textContent = 'Camera off';
    return;
  }
  const [live, opened] = await Promise.all([currentLive(), startCamera()]);
  socket.get().catch(() => {}); // connect now: Go LIVE should not wait for the handshake
  await watchOwnLive(); // an encoder's LIVE (WHIP) is run from here
  if (encoderLive) return;
  if (!live) {
    if (resumeId) endedWhileAway(); // reloaded after the grace period: it is over
    return;
  }
  ui['title-input'].value = live.title;
  if (live.live_id === resumeId && opened) {
    resumes = 0;
    goLive(live.title, { resuming: true, resumeOf: resumeId });
  } else if (!encoderLive) {
    notice("You're LIVE from another tab or device. End it there first, or wait for it to stop.");
  }
}

init();
