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

// A sign-out the server did not hear (offline, server down): the HttpOnly cookie is
// still in the browser and only the server can drop it, so each page load asks again
// (finishSignOut) until it answers.
const SIGNOUT_PENDING = 'golive.signout_pending';

function rememberPendingSignOut(pending) {
  try {
    if (pending) localStorage.setItem(SIGNOUT_PENDING, '1');
    else localStorage.removeItem(SIGNOUT_PENDING);
  } catch {
    // Storage disabled: the cookie lasts until it expires or the next sign-in replaces it.
  }
}

/**
 * Sign out: the server revokes the token, drops the cookie and closes its sockets. The local
 * session is cleared even when the server cannot be reached (and the sign-out is sent
 * again on the next page load), so a shared computer is never left signed in.
 */
export async function signOut() {
  try {
    if (currentUser()) await api('/api/signout', { method: 'POST', token: null });
  } catch (err) {
    if (err.code !== ErrorCode.UNAUTHORIZED) rememberPendingSignOut(true);
    throw err;
  } finally {
    clearSession();
  }
}

/** Send again a sign-out the server did not hear (header.js calls it on each page load). */
export async function finishSignOut() {
  let pending = null;
  try { pending = localStorage.getItem(SIGNOUT_PENDING); } catch { /* storage disabled */ }
  if (!pending) return;
  // Signed in again since: that sign-in's cookie replaced the old one.
  if (currentUser()) { rememberPendingSignOut(false); return; }
  try {
    await api('/api/signout', { method: 'POST', token: null });
  } catch (err) {
    if (err.code !== ErrorCode.UNAUTHORIZED) return; // still unheard: the next load tries
  }
  rememberPendingSignOut(false);
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
