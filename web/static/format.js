/** Numbers and names as the pages show them. */

const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

/** 999 -> "999", 1234 -> "1.2K", 2500000 -> "2.5M". */
export function formatCount(n) {
  const value = Number(n) || 0;
  return value < 10000 ? value.toLocaleString('en') : compact.format(value);
}

/** "@alice" */
export function handle(username) {
  return `@${username}`;
}

/** The path of a user's profile page. */
export function profilePath(username) {
  return `/@${encodeURIComponent(username)}`;
}

/** Elapsed seconds as a clock: 65 -> "01:05", 3725 -> "01:02:05". */
export function formatDuration(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(total / 3600);
  const mm = String(Math.floor((total % 3600) / 60)).padStart(2, '0');
  const ss = String(total % 60).padStart(2, '0');
  return h ? `${String(h).padStart(2, '0')}:${mm}:${ss}` : `${mm}:${ss}`;
}
