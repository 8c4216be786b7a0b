/**
 * The replay page (/replay/ID): GET /api/replays/ID, then the recorded video (its file
 * at /replays/ID/video, Range requests for seeking) and the saved chat, each line
 * shown once the video's time reaches its offset (`t`, seconds), hidden again on a seek
 * back. Its creator may delete it. Who may watch is who may watch the LIVE: a refusal
 * (signed-in only, a block, a ban) is said instead of the player.
 */

import { api, segment } from './api.js';
import { byTestId, el, showError } from './dom.js';
import { ErrorCode, describeError } from './errors.js';
import { formatDuration, handle, profilePath } from './format.js';
import { renderHeader } from './header.js';
import { currentUser } from './session.js';

const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

const ui = Object.fromEntries([
  'replay-loading', 'replay', 'replay-video', 'replay-creator', 'replay-title', 'replay-when',
  'replay-capped', 'replay-delete', 'replay-error', 'replay-chat', 'replay-chat-empty',
  'replay-refused', 'replay-refused-title', 'replay-refused-detail', 'replay-signin',
].map((id) => [id, byTestId(id)]));

const replayId = location.pathname.split('/').filter(Boolean)[1] ?? '';
/** [{t, node}] in time order: the lines and the moment each appears. */
let lines = [];

function showOnly(section) {
  for (const id of ['replay-loading', 'replay', 'replay-refused']) ui[id].hidden = id !== section;
}

function chatLine(line) {
  const name = line.kind === 'message' && line.user ? line.user.display_name : '';
  return el('li', { class: `replay-line replay-${line.kind}`, testid: 'replay-chat-line', hidden: true,
    'data-t': line.t },
  el('span', { class: 'replay-chat-time muted' }, formatDuration(line.t)),
  name ? el('strong', { class: 'replay-name' }, name) : null,
  el('span', { class: 'replay-text' }, line.text));
}

/** Show the lines up to the video's time: cheap enough per timeupdate (~4 a second). */
function syncChat() {
  const now = ui['replay-video'].currentTime;
  let newest = null;
  for (const { t, node } of lines) {
    const shown = t <= now;
    if (node.hidden === shown) {
      node.hidden = !shown;
      if (shown) newest = node;
    }
  }
  if (newest) ui['replay-chat'].scrollTop = ui['replay-chat'].scrollHeight;
}

function refuse(err) {
  const title = ui['replay-refused-title'];
  const signin = ui['replay-signin'];
  signin.hidden = true;
  if (err.code === ErrorCode.UNAUTHORIZED) {
    title.textContent = 'Sign in to watch this replay';
    signin.hidden = false;
    signin.href = `/?next=${encodeURIComponent(location.pathname)}#signin`;
  } else if (err.code === ErrorCode.FORBIDDEN) {
    title.textContent = 'You can’t watch this replay';
  } else if (err.code === ErrorCode.NOT_FOUND) {
    title.textContent = 'No such replay';
  } else {
    title.textContent = 'Could not load this replay';
  }
  ui['replay-refused-detail'].textContent = describeError(err);
  showOnly('replay-refused');
}

function render({ replay, creator, chat }) {
  document.title = `${replay.title} · replay · golive`;
  ui['replay-title'].textContent = replay.title;
  ui['replay-creator'].textContent = `${creator.display_name} ${handle(creator.username)}`;
  ui['replay-creator'].href = profilePath(creator.username);
  ui['replay-when'].textContent = `${DATE.format(new Date(replay.started_at * 1000))} · `
    + formatDuration(replay.duration_s);
  ui['replay-capped'].hidden = !replay.capped;
  ui['replay-delete'].hidden = currentUser()?.id !== replay.creator_id;
  lines = chat.map((line) => ({ t: line.t, node: chatLine(line) }));
  ui['replay-chat'].replaceChildren(...lines.map((line) => line.node));
  ui['replay-chat-empty'].hidden = lines.length > 0;
  const video = ui['replay-video'];
  if (replay.thumbnail_url) video.poster = replay.thumbnail_url;
  video.src = replay.video_url;
  video.addEventListener('timeupdate', syncChat);
  video.addEventListener('seeked', syncChat);
  showOnly('replay');
  syncChat();
}

async function load() {
  const path = `/api/replays/${segment(replayId)}`;
  let answer;
  try {
    answer = await api(path);
  } catch (err) {
    if (err.code === ErrorCode.UNAUTHORIZED && currentUser()) {
      try {
        answer = await api(path, { token: null }); // a stale session: try as a visitor
      } catch (again) {
        refuse(again);
        return;
      }
    } else {
      refuse(err);
      return;
    }
  }
  render(answer);
}

ui['replay-delete'].addEventListener('click', async () => {
  if (!confirm('Delete this replay for good?')) return;
  try {
    await api(`/api/replays/${segment(replayId)}`, { method: 'DELETE' });
  } catch (err) {
    showError(ui['replay-error'], err);
    return;
  }
  ui['replay-video'].removeAttribute('src');
  const me = currentUser();
  location.assign(me ? profilePath(me.username) : '/');
});

renderHeader();
load();
