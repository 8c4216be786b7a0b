/**
 * Errors from the golive server, HTTP API or Socket.IO ack, with their stable code.
 *
 * The server answers failures as {ok: false, error: {code, message, ...details}}
 * with one code enum (docs/protocol.md): invalid, unauthorized, forbidden,
 * not_found, rate_limited, insufficient_funds, conflict, unavailable, internal.
 * Pages branch on `code` and show `message`, which the server words for people.
 * `retryable` (rate_limited, unavailable) says the same request may succeed later;
 * `internal` is a server bug, answered with the `error_id` it is logged under.
 * ErrorCode is engine/errors.py's enum, kept equal by tests/test_error_codes.py.
 */

export const ErrorCode = Object.freeze({
  INVALID: 'invalid',
  UNAUTHORIZED: 'unauthorized',
  FORBIDDEN: 'forbidden',
  NOT_FOUND: 'not_found',
  RATE_LIMITED: 'rate_limited',
  INSUFFICIENT_FUNDS: 'insufficient_funds',
  CONFLICT: 'conflict',
  UNAVAILABLE: 'unavailable',
  INTERNAL: 'internal',
});

export class GoliveError extends Error {
  /**
   * @param {string} code one of ErrorCode
   * @param {string} message fit to show to a person
   * @param {object} details the server's extra fields: field, retry_after, reason, event...
   */
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = 'GoliveError';
    this.code = code;
    this.details = details;
  }

  /** The form field the server blamed ("username", "bio"...), or null. */
  get field() { return this.details.field ?? null; }

  /** Seconds to wait before retrying a rate_limited request, or null. */
  get retryAfter() { return this.details.retry_after ?? null; }

  /** Why a token was refused: missing, invalid, expired or revoked (unauthorized only). */
  get reason() { return this.details.reason ?? null; }

  /** True when the same request may succeed if sent again later (the server says so). */
  get retryable() { return this.details.retryable === true; }

  /** The id an `internal` error is logged under on the server, or null. */
  get errorId() { return this.details.error_id ?? null; }

  /** Build from the `error` object of a failed answer. */
  static fromPayload(error, extra = {}) {
    const { code = ErrorCode.UNAVAILABLE, message = '', ...details } =
      error && typeof error === 'object' ? error : {};
    return new GoliveError(String(code), String(message || code), { ...details, ...extra });
  }
}

/** A message for people from any thrown value (a GoliveError or a bug). */
export function describeError(err) {
  if (!(err instanceof GoliveError)) return 'Something went wrong. Reload the page and try again.';
  // The server words messages as clauses ("password must be 8-128 characters");
  // shown alone they read as sentences.
  return err.message.charAt(0).toUpperCase() + err.message.slice(1);
}
