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
