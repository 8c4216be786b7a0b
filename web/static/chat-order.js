/**
 * Message ids are Redis Stream ids, "<ms>-<seq>": the server's order and time.
 * Shared by the live chat and the Messages page.
 */

/** [ms, seq] of an id, as numbers (ms stays below 2^53 for the next 285,000 years). */
function parts(id) {
  const [ms, seq] = String(id).split('-');
  return [Number(ms), Number(seq)];
}

/** True when id a comes after id b. */
export function newer(a, b) {
  const [am, as] = parts(a);
  const [bm, bs] = parts(b);
  return am > bm || (am === bm && as > bs);
}

/** The wall-clock time an id holds, as a Date. */
export function idTime(id) {
  return new Date(parts(id)[0]);
}

/** "14:05" today, else "3 Mar 14:05". */
export function shortTime(date) {
  const now = new Date();
  const time = date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (date.toDateString() === now.toDateString()) return time;
  return `${date.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })} ${time}`;
}
