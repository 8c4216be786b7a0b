/**
 * Socket.IO to the golive server: connect signed in by the session cookie (or a
 * given token, or as a signed-out visitor), and ask
 * questions that answer through an ack.
 *
 * Needs the msgpack build of socket.io-client loaded first, as a classic script:
 *   <script src="/vendor/socket.io.msgpack.min.js"></script>
 * It defines the global `io`. With msgpack, send binary as ArrayBuffer: a
 * Uint8Array arrives at the server as a dict.
 */

import { ErrorCode, GoliveError } from './errors.js';
import { clearSession, currentUser } from './session.js';

export const CONNECT_TIMEOUT_MS = 10000;
export const ASK_TIMEOUT_MS = 5000;

/** The GoliveError for a connect_error: a refusal carries err.data = {code, reason}. */
function refusal(err) {
  const data = err?.data;
  if (data && typeof data === 'object' && data.code) {
    return new GoliveError(String(data.code), err.message || String(data.code), { ...data });
  }
  return null;
}

/**
 * Open a Socket.IO connection on this origin and wait until the server accepts it.
 *
 * @param {object} [options]
 * @param {string|null} [options.token] a bearer token; by default the handshake carries the
 *   session cookie (HttpOnly: this page never sees the token)
 * @param {boolean} [options.anonymous] when signed out, connect as a signed-out visitor
 * @param {number} [options.timeout] ms to wait before giving up (transport errors retry until then)
 * @returns {Promise<Socket>} a connected socket.io-client Socket; close it with socket.disconnect()
 * @throws {GoliveError} the server's refusal code: `unauthorized` with .reason
 *   (missing, invalid, expired, revoked; if it was the session's cookie, the
 *   session is cleared) or
 *   `unavailable` (server starting, unreachable, or the client script missing).
 *   A refusal on a later reconnect clears the session too.
 */
export function connectSocket({ token = null, anonymous = false,
  timeout = CONNECT_TIMEOUT_MS } = {}) {
  const byCookie = !token && currentUser() !== null;
  if (!token && !byCookie && !anonymous) {
    return Promise.reject(new GoliveError(ErrorCode.UNAUTHORIZED, 'Sign in first.', { reason: 'missing' }));
  }
  if (typeof globalThis.io !== 'function') {
    return Promise.reject(new GoliveError(ErrorCode.UNAVAILABLE,
      'The Socket.IO client (/vendor/socket.io.msgpack.min.js) is not loaded.'));
  }
  // Signed out (anonymous: true): the server makes up a read-only identity for this
  // socket (watch, read the chat); everything else answers `unauthorized`.
  // Signed in: an empty auth, and the server reads the cookie of the handshake.
  const auth = token ? { token } : byCookie ? {} : { anonymous: true };
  // After a drop (a node killed, a network blip) socket.io-client reconnects by itself
  // to the same URL, where the kernel (workers on one port) or a load balancer hands it to
  // a living node: first try after 0.25-0.75 s (500 ms, randomized by half), then doubling
  // to at most 2 s, so a page is back within a few seconds (the default is 1-5 s).
  const socket = globalThis.io({
    auth, transports: ['websocket'], reconnectionDelay: 500, reconnectionDelayMax: 2000,
  });
  socket.on('connect_error', (err) => {
    // Only the session's own cookie refused signs the browser out.
    if (refusal(err)?.code === ErrorCode.UNAUTHORIZED && byCookie) clearSession();
  });
  return new Promise((resolve, reject) => {
    let lastError = null;
    const finish = (error) => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
      if (error) {
        socket.disconnect();
        reject(error);
      } else {
        resolve(socket);
      }
    };
    const onConnect = () => finish(null);
    const onError = (err) => {
      // A refusal is final; a transport error is retried by socket.io-client
      // with backoff until the timeout.
      const refused = refusal(err);
      if (refused) finish(refused);
      else lastError = err;
    };
    const timer = setTimeout(() => finish(new GoliveError(ErrorCode.UNAVAILABLE,
      `Could not connect to the server within ${timeout / 1000} s` +
      (lastError?.message ? ` (${lastError.message}).` : '.'))), timeout);
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}

/**
 * Send `event` with `payload` and wait for its ack.
 *
 * @returns {Promise<object>} the ack ({ok: true, ...})
 * @throws {GoliveError} the ack's error (code, message, and details such as
 *   retry_after or field; details.event names the event), or `unavailable`
 *   when no answer came within the timeout. `unauthorized` clears the session.
 */
export async function ask(socket, event, payload = {}, { timeout = ASK_TIMEOUT_MS } = {}) {
  let reply;
  try {
    reply = await socket.timeout(timeout).emitWithAck(event, payload);
  } catch {
    throw new GoliveError(ErrorCode.UNAVAILABLE,
      `The server did not answer within ${timeout / 1000} s. Try again.`, { event });
  }
  if (!reply || typeof reply !== 'object') {
    throw new GoliveError(ErrorCode.UNAVAILABLE, 'The server sent a malformed answer.', { event });
  }
  if (reply.ok !== true) {
    const error = GoliveError.fromPayload(reply.error, { event });
    if (error.code === ErrorCode.UNAUTHORIZED) clearSession();
    throw error;
  }
  return reply;
}

/**
 * A socket opened on first use and shared by a page's features; reopened
 * after a failed attempt or close(). get() resolves to a connected socket.
 */
export class SharedSocket {
  constructor(options = {}) {
    this.options = options;
    this.pending = null;
    /** Push listeners, kept across sockets: [{event, handler, sockets: WeakSet}]. */
    this.listeners = new Set();
  }

  get() {
    if (!this.pending) {
      const pending = this.pending = connectSocket(this.options);
      const forget = () => { if (this.pending === pending) this.pending = null; };
      pending.then((socket) => {
        for (const entry of this.listeners) attach(socket, entry);
        // socket.io-client reconnects by itself after a network drop, but not
        // after the server closed the socket (signed out elsewhere): forget it.
        socket.on('disconnect', (reason) => {
          if (reason === 'io server disconnect' || reason === 'io client disconnect') forget();
        });
      }, forget);
    }
    return this.pending;
  }

  /**
   * Close this connection and open a new one: with workers on one port the kernel
   * hands each new connection to a worker by a hash of its addresses, so this is how
   * a page reaches another worker (the studio looking for its live's node).
   */
  async reopen() {
    const pending = this.pending;
    this.pending = null;
    if (pending) {
      try { (await pending).disconnect(); } catch { /* it never connected */ }
    }
    return this.get();
  }

  /**
   * Hear a server push (`live:ended`, `room:state`...) on this socket and on
   * every later one, without opening a connection. A 'connect' listener hears
   * reconnections only: the server then knows a new socket, which is in none
   * of the rooms the old one had joined (live:watch, discover:watch...), so
   * send those again. Returns a function that stops listening.
   */
  on(event, handler) {
    const entry = { event, handler, sockets: new WeakSet() };
    this.listeners.add(entry);
    this.pending?.then((socket) => attach(socket, entry), () => {});
    return () => {
      this.listeners.delete(entry);
      this.pending?.then((socket) => socket.off(event, handler), () => {});
    };
  }

  /** Send through the shared socket; see ask(). */
  async ask(event, payload = {}, options = {}) {
    return ask(await this.get(), event, payload, options);
  }

  /** Disconnect (for instance when the session changes); the next get() reconnects. */
  close() {
    const pending = this.pending;
    this.pending = null;
    pending?.then((socket) => socket.disconnect(), () => {});
  }
}

/** Add a SharedSocket listener to a socket once (get() and on() may both try). */
function attach(socket, entry) {
  if (entry.sockets.has(socket)) return;
  entry.sockets.add(socket);
  socket.on(entry.event, entry.handler);
}
