/**
 * The signed-in session kept in this browser: its expiry and the user it belongs
 * to, in localStorage so every tab and page shares it.
 *
 * The token itself is not here: the server keeps it in an HttpOnly cookie
 * (signaling/session_cookie.py) that rides along with every request and the
 * Socket.IO handshake, and that no script of the page can read, so markup
 * injected into a page could not carry it off. What is kept here only says who
 * the pages should draw as signed in.
 *
 * No network here: api.js and socket.js clear the session when the server says
 * it is no longer valid; accounts.js signs in and out.
 * Listeners hear every change, from this tab or another one.
 */

const KEY = 'golive.session';
const CHANGED = 'golive:session';

function read() {
  try {
    const raw = localStorage.getItem(KEY);
    const session = raw ? JSON.parse(raw) : null;
    if (!session || !session.user) return null;
    // The server refuses an expired token anyway; dropping it here avoids a
    // signed-in header that fails on the first click.
    if (session.expires_at && session.expires_at * 1000 <= Date.now()) return null;
    return session;
  } catch {
    return null; // storage disabled or a corrupt entry: signed out
  }
}

function write(session) {
  let before = null;
  try { before = localStorage.getItem(KEY); } catch { /* storage disabled */ }
  if (before === (session ? JSON.stringify(session) : null)) return; // nothing changed
  try {
    if (session) localStorage.setItem(KEY, JSON.stringify(session));
    else localStorage.removeItem(KEY);
  } catch {
    // Storage full or disabled: the session lives only as long as this page.
  }
  window.dispatchEvent(new CustomEvent(CHANGED, { detail: session }));
}

/** The signed-in user's public fields ({id, username, display_name, bio}), or null. */
export function currentUser() {
  return read()?.user ?? null;
}

/**
 * Keep the answer of /api/register or /api/signin sent with "cookie": true:
 * {expires_at, user} (the token went into the HttpOnly cookie).
 */
export function saveSession({ expires_at, user }) {
  write({ expires_at, user });
}

/** Replace the cached user (after a profile edit or /api/me). */
export function updateSessionUser(user) {
  const session = read();
  if (session) write({ ...session, user: { ...session.user, ...user } });
}

/** Forget the session (signed out, or the server refused the token). */
export function clearSession() {
  let stored = null;
  try { stored = localStorage.getItem(KEY); } catch { /* storage disabled: nothing kept */ }
  if (stored !== null) write(null);
}

/**
 * Call fn(user | null) whenever the session changes, in this tab or another:
 * sign in, sign out, a refused token, or new details of the same user (compare
 * user ids to tell a different person from an edited profile).
 * Returns a function that stops listening.
 */
export function onSessionChange(fn) {
  const local = () => fn(currentUser());
  const other = (event) => { if (event.key === KEY || event.key === null) fn(currentUser()); };
  window.addEventListener(CHANGED, local);
  window.addEventListener('storage', other);
  return () => {
    window.removeEventListener(CHANGED, local);
    window.removeEventListener('storage', other);
  };
}
