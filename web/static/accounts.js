/**
 * Signing up, in and out over the HTTP API; each keeps session.js in step.
 */

import { api } from './api.js';
import { ErrorCode } from './errors.js';
import { clearSession, currentUser, saveSession, updateSessionUser } from './session.js';

/**
 * Register and sign in. fields: {username, display_name, birthdate 'YYYY-MM-DD', password}.
 * Returns the new user; throws GoliveError (invalid with .field, conflict, forbidden...).
 */
export async function signUp({ username, display_name, birthdate, password }) {
  const body = await api('/api/register', {
    method: 'POST', token: null, body: { username, display_name, birthdate, password, cookie: true },
  });
  saveSession(body);
  return body.user;
}

/** Sign in with a username and password; returns the user. */
export async function signIn(username, password) {
  // cookie: the token goes into an HttpOnly cookie, never into this page's hands.
  const body = await api('/api/signin', { method: 'POST', token: null,
    body: { username, password, cookie: true } });
  saveSession(body);
  return body.user;
}

/**
 * Sign out: the server revokes the token, drops the cookie and closes its sockets. The local
 * session is cleared even when the server cannot be reached, so a shared
 * computer is never left signed in.
 */
export async function signOut() {
  try {
    if (currentUser()) await api('/api/signout', { method: 'POST', token: null });
  } finally {
    clearSession();
  }
}

/**
 * Check the session cookie with the server and refresh the cached user.
 * Returns the user, or null when signed out or the token was refused (the
 * session is then cleared). A server that cannot be reached keeps the session.
 */
export async function verifySession() {
  if (!currentUser()) return null;
  try {
    const { user } = await api('/api/me');
    updateSessionUser(user);
    return user;
  } catch (err) {
    if (err.code === ErrorCode.UNAUTHORIZED) return null; // api() cleared the session
    throw err;
  }
}
