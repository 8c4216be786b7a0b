/**
 * Small DOM helpers for the pages. User text only ever goes in through
 * textContent (never innerHTML), so a display name like "<img onerror=...>"
 * shows as typed.
 */

import { describeError } from './errors.js';

/** The element with data-testid=`id` (the pages' stable hooks), or throw. */
export function byTestId(id, root = document) {
  const node = root.querySelector(`[data-testid="${id}"]`);
  if (!node) throw new Error(`no element with data-testid="${id}"`);
  return node;
}

/**
 * Create an element. props: {class, text, testid, hidden, on: {click: fn},
 * style: {property: value}, ...attributes}. children: nodes or strings (added as text).
 *
 * style goes through the CSSOM (node.style.setProperty): the Content-Security-Policy
 * (style-src 'self', signaling/security_headers.py) refuses a style="" attribute.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'testid') node.dataset.testid = value;
    else if (key === 'hidden') node.hidden = true;
    else if (key === 'style') {
      if (typeof value !== 'object') throw new TypeError('el(): style takes {property: value}, not a string (CSP)');
      for (const [name, v] of Object.entries(value)) node.style.setProperty(name, String(v));
    }
    else if (key === 'on') for (const [name, fn] of Object.entries(value)) node.addEventListener(name, fn);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/**
 * `link` when it is a path of this site ("/@ann", "/messages?c=..."), else null: a
 * link that came over the wire never becomes a javascript: URL or another site's page.
 */
export function sitePath(link) {
  return typeof link === 'string' && /^\/(?![/\\])/.test(link) ? link : null;
}

/** Show an error (a GoliveError's message, or a generic line for bugs) in `node`. */
export function showError(node, err) {
  if (!(err instanceof Error && err.name === 'GoliveError')) console.error(err);
  node.textContent = describeError(err);
  node.hidden = false;
}

/** Hide and empty an error line. */
export function hideError(node) {
  node.textContent = '';
  node.hidden = true;
}

/** Mark a button as working (disabled, aria-busy) or done. */
export function setBusy(button, busy) {
  button.disabled = busy;
  if (busy) button.setAttribute('aria-busy', 'true');
  else button.removeAttribute('aria-busy');
}
