/**
 * The header's notifications bell (a link to /notifications with the unread
 * count) and the real-time alerts every page shows as toasts: "Ann nudged you
 * to go live!", "Carol is LIVE: Morning show"...
 *
 * It lives on the page's SharedSocket: `notify:unread` on connect, then the
 * server's `notify:new` (a new notification, its alert line and the unread
 * count) and `notify:unread` (read elsewhere) pushes, which reach every open
 * tab of the user. A toast opens what it is about (the live, the studio...) and
 * marks it read.
 *
 *   el('nav', {}, bellLink(), ...)          // in the header
 *   paintNotifications(root)                // after the header is re-painted
 *   followNotifications(root, socket)       // once per page
 */

import { el, sitePath } from './dom.js';
import { currentUser, onSessionChange } from './session.js';
import { ask, connectSocket } from './socket.js';

/** How long a toast stays, ms. */
export const TOAST_MS = 10000;
/** At most this many toasts at once; the oldest goes first. */
const TOASTS_MAX = 4;

let unread = 0;
let toasts = null;

/** The bell link for the header's nav. */
export function bellLink() {
  return el('a', { class: 'header-messages header-bell', href: '/notifications',
    testid: 'notifications-link', 'aria-label': 'Notifications', title: 'Notifications' },
  el('span', { class: 'icon-bell', 'aria-hidden': 'true' }),
  el('span', { class: 'unread-badge', testid: 'notify-badge', hidden: true }));
}

/** Paint the last known unread count into the header under `root`. */
export function paintNotifications(root, count = unread) {
  unread = Math.max(0, Number(count) || 0);
  const badge = root?.querySelector('[data-testid="notify-badge"]');
  if (!badge) return;
  badge.textContent = unread > 99 ? '99+' : String(unread);
  badge.hidden = unread === 0;
  badge.closest('a')?.setAttribute('aria-label',
    unread ? `Notifications, ${unread} unread` : 'Notifications');
}

function toastRoot() {
  if (!toasts || !toasts.isConnected) {
    toasts = el('div', { class: 'toasts', testid: 'notify-toasts', role: 'status',
      'aria-live': 'polite' });
    document.body.append(toasts);
  }
  return toasts;
}

/** Show one alert: its text, opening `notification.link` on click. */
export function showToast(alert, notification, socket) {
  const root = toastRoot();
  const close = el('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss',
    text: '×' });
  const path = sitePath(notification?.link);
  const body = el(path ? 'a' : 'span', {
    class: 'toast-body', testid: 'notify-toast-link',
    href: path ?? undefined,
  }, el('span', { class: `toast-icon kind-${notification?.kind ?? 'other'}`, 'aria-hidden': 'true' }),
  el('span', { text: alert }));
  const toast = el('div', { class: 'toast', testid: 'notify-toast',
    'data-kind': notification?.kind ?? '' }, body, close);
  const remove = () => toast.remove();
  close.addEventListener('click', remove);
  body.addEventListener('click', (event) => {
    if (!path) return;
    event.preventDefault();
    const go = () => { location.href = path; };
    // Mark it read on the way (at most a short wait; the page opens either way).
    const marking = socket?.ask('notify:read', { id: notification.id }).catch(() => {});
    Promise.race([marking, new Promise((resolve) => setTimeout(resolve, 800))]).then(go);
  });
  root.append(toast);
  while (root.children.length > TOASTS_MAX) root.firstElementChild.remove();
  setTimeout(remove, TOAST_MS);
  return toast;
}

/** Whether `link` opens the page this tab already shows (the case-insensitive /@name). */
export function isHere(link) {
  if (!link) return false;
  try {
    const target = new URL(link, location.origin);
    return target.origin === location.origin
      && decodeURIComponent(target.pathname).toLowerCase() === decodeURIComponent(location.pathname).toLowerCase()
      && target.search === location.search;
  } catch {
    return false;
  }
}

/**
 * Keep the bell's count and the toasts current on `socket` (the page's
 * SharedSocket). Without one the count is read once per visit.
 */
export function followNotifications(root, socket) {
  const refresh = async () => {
    if (!currentUser()) return;
    try {
      if (socket) {
        paintNotifications(root, (await socket.ask('notify:unread', {})).unread);
        return;
      }
      const once = await connectSocket();
      try {
        paintNotifications(root, (await ask(once, 'notify:unread', {})).unread);
      } finally {
        once.disconnect();
      }
    } catch {
      // Not reachable now; the next push or reconnect repaints it.
    }
  };
  if (socket) {
    socket.on('notify:new', ({ notification, alert, unread: count }) => {
      paintNotifications(root, count);
      // The inbox page lists it live itself; and "Alice is LIVE" on /@alice, which
      // already shows that LIVE, would only cover it (the bell still counts it).
      const watching = notification?.kind === 'live' && isHere(notification.link);
      if (alert && location.pathname !== '/notifications' && !watching) {
        showToast(alert, notification, socket);
      }
    });
    socket.on('notify:unread', ({ unread: count }) => paintNotifications(root, count));
    socket.on('connect', refresh);
  }
  onSessionChange(() => {
    paintNotifications(root, 0);
    toasts?.replaceChildren();
    refresh();
  });
  refresh();
}
