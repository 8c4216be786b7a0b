/**
 * Avatars: the profile photo when there is one (`user.avatar`, a URL the server
 * re-encoded and serves with caching), else the display name's first letter on a
 * colour picked from the user id, so the same person looks the same everywhere.
 *
 * The letter is drawn by CSS from data-initial, so it is not part of the
 * surrounding text: a link reading "@alice" stays "@alice" for screen readers,
 * copy-paste and tests.
 */

import { el } from './dom.js';

const segmenter = typeof Intl.Segmenter === 'function'
  ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;

/** The first visible character of a name (a whole emoji or accented letter), upper-cased. */
export function initialOf(name) {
  const text = String(name ?? '').trim();
  if (!text) return '?';
  const first = segmenter ? segmenter.segment(text)[Symbol.iterator]().next().value.segment
    : Array.from(text)[0];
  return first.toLocaleUpperCase();
}

/** A hue 0-359 derived from a stable key (the user id). */
export function hueOf(key) {
  let hash = 2166136261;
  for (const ch of String(key ?? '')) hash = Math.imul(hash ^ ch.codePointAt(0), 16777619);
  return Math.abs(hash) % 360;
}

/** Fill an existing avatar element for `user` ({id, display_name, username}). */
export function paintAvatar(node, user) {
  node.dataset.initial = initialOf(user.display_name || user.username);
  node.style.setProperty('--avatar-hue', String(hueOf(user.id || user.username)));
  node.setAttribute('aria-hidden', 'true');
  // Only the server's own /avatars/ paths: a URL is never taken from elsewhere.
  const photo = typeof user.avatar === 'string' && /^\/avatars\/[0-9a-f]{16}\/[0-9a-f]{16}\.webp$/.test(user.avatar)
    ? user.avatar : null;
  node.classList.toggle('has-photo', Boolean(photo));
  node.dataset.photo = photo ?? '';
  node.style.backgroundImage = photo ? `url("${photo}")` : '';
}

/** A new avatar element; size is 'sm', 'md' or 'lg' (see golive.css). */
export function avatar(user, size = 'md') {
  const node = el('span', { class: `avatar avatar-${size}` });
  paintAvatar(node, user);
  return node;
}
