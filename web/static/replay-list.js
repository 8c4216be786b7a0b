/**
 * The replays on a creator's profile (GET /api/users/NAME/replays): the recorded LIVEs
 * the viewer may watch, newest first, each a link to its replay page with its title,
 * date and length. Hidden when there are none.
 */

import { api, segment } from './api.js';
import { el } from './dom.js';
import { ErrorCode } from './errors.js';
import { formatDuration } from './format.js';

const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

async function fetchReplays(username) {
  const path = `/api/users/${segment(username)}/replays`;
  try {
    return await api(path);
  } catch (err) {
    if (err.code === ErrorCode.UNAUTHORIZED) return api(path, { token: null });
    throw err;
  }
}

function item(replay) {
  const when = DATE.format(new Date(replay.started_at * 1000));
  return el('li', { testid: 'replay-item', 'data-replay': replay.replay_id },
    el('a', { class: 'replay-link', href: replay.page_url, testid: 'replay-link' },
      el('span', { class: 'replay-thumb', 'aria-hidden': 'true' },
        replay.thumbnail_url
          ? el('img', { src: replay.thumbnail_url, alt: '', loading: 'lazy', testid: 'replay-thumb' })
          : null,
        el('span', { class: 'replay-duration', testid: 'replay-duration' },
          formatDuration(replay.duration_s))),
      el('span', { class: 'replay-meta' },
        el('strong', { testid: 'replay-title' }, replay.title),
        el('span', { class: 'muted', testid: 'replay-date' }, when))));
}

/** Fill `section` (its list is [data-testid=replay-list]) with `username`'s replays. */
export async function showReplays(section, username) {
  const list = section.querySelector('[data-testid="replay-list"]');
  let answer;
  try {
    answer = await fetchReplays(username);
  } catch {
    section.hidden = true; // the profile itself still shows
    return;
  }
  list.replaceChildren(...answer.replays.map(item));
  section.hidden = answer.replays.length === 0;
}
