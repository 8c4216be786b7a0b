/**
 * The JSON HTTP API under /api/: one fetch helper that returns the parsed body
 * of a success and throws a GoliveError (with the server's code and message)
 * for anything else.
 */

import { ErrorCode, GoliveError } from './errors.js';
import { clearSession, currentUser } from './session.js';

/**
 * Call the API and return the parsed body ({ok: true, ...}).
 *
 * @param {string} path e.g. '/api/users/alice'
 * @param {object} options
 * @param {string} [options.method='GET']
 * @param {object} [options.body] sent as JSON
 * @param {string|null} [options.token] a bearer token to send; by default none, and the
 *   session cookie signs the request in (null: the same, but a refusal keeps the session)
 * @param {AbortSignal} [options.signal]
 * @throws {GoliveError} code from the server, or `unavailable` when it could not be reached.
 *   An `unauthorized` answer to a request signed in by the session's cookie clears the session.
 */
export async function api(path, { method = 'GET', body, token, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new GoliveError(ErrorCode.UNAVAILABLE, 'Could not reach the server. Check your connection and try again.');
  }
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    // Not JSON: a proxy error page or an empty body; judged by the status below.
  }
  if (response.ok && parsed?.ok === true) return parsed;
  const error = parsed?.ok === false
    ? GoliveError.fromPayload(parsed.error, { status: response.status })
    : new GoliveError(ErrorCode.UNAVAILABLE, `The server answered HTTP ${response.status}.`,
      { status: response.status });
  if (error.code === ErrorCode.UNAUTHORIZED && token === undefined && currentUser()) clearSession();
  throw error;
}

/** Encode one path segment (a username) for an API URL. */
export function segment(value) {
  return encodeURIComponent(String(value));
}
