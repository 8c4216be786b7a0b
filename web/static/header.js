/**
 * The header every page shares: the golive mark linking home, and either the
 * signed-in user (linking to their profile) with notifications, Messages, the
 * studio (Go LIVE), the wallet and Sign out, or Sign in / Sign up. It follows the session: signing in or out anywhere
 * re-renders it.
 *
 * The bell (notifications-badge.js) links to /notifications with its unread
 * count and shows real-time alerts as toasts.
 *
 * Messages carries the unread badge, kept live over the page's socket:
 * `dm:unread` on connect, then the server's `dm:unread` pushes (every tab of a
 * user is in its user room).
 */

import { finishSignOut, signOut, verifySession } from './accounts.js';
import { avatar } from './avatar.js';
import { el } from './dom.js';
import { handle, profilePath } from './format.js';
import { bellLink, followNotifications, paintNotifications } from './notifications-badge.js';
import { currentUser, onSessionChange } from './session.js';
import { ask, connectSocket } from './socket.js';

/** The unread count last heard, shown again when the header is re-painted. */
let unread = 0;

function messagesLink() {
  return el('a', { class: 'header-messages', href: '/messages', testid: 'messages-link',
    'aria-label': 'Messages', title: 'Messages' },
  el('span', { class: 'icon-message', 'aria-hidden': 'true' }),
  el('span', { class: 'unread-badge', testid: 'unread-badge', hidden: true }));
}

function walletLink() {
  return el('a', { class: 'header-wallet btn btn-ghost btn-sm', href: '/wallet', testid: 'wallet-link',
    title: 'Wallet: coins, diamonds and history', text: 'Wallet' });
}

/** The studio, where a LIVE starts (a red dot, like the LIVE badge). */
function studioLink() {
  return el('a', { class: 'header-studio btn btn-ghost btn-sm', href: '/studio', testid: 'header-studio-link',
    title: 'Your studio: go LIVE' },
  el('span', { class: 'header-studio-dot', 'aria-hidden': 'true' }),
  el('span', { class: 'header-studio-go', text: 'Go ' }), 'LIVE');
}

function paintUnread(root, total) {
  unread = Math.max(0, Number(total) || 0);
  const badge = root.querySelector('[data-testid="unread-badge"]');
  if (!badge) return;
  badge.textContent = unread > 99 ? '99+' : String(unread);
  badge.hidden = unread === 0;
  badge.closest('a')?.setAttribute('aria-label', unread ? `Messages, ${unread} unread` : 'Messages');
}

function brand() {
  return el('a', { class: 'brand', href: '/', testid: 'home-link', 'aria-label': 'golive home' },
    el('span', { class: 'brand-mark', 'aria-hidden': 'true' }),
    el('span', { class: 'brand-name', text: 'golive' }));
}

function signedInNav(user) {
  const signOutButton = el('button', {
    type: 'button', class: 'btn btn-ghost btn-sm', testid: 'signout-button', text: 'Sign out',
  });
  signOutButton.addEventListener('click', async () => {
    signOutButton.disabled = true;
    try {
      await signOut();
    } catch {
      // The local session is gone whatever the server said; nothing to show.
    }
  });
  return [
    bellLink(),
    messagesLink(),
    studioLink(),
    walletLink(),
    el('a', { class: 'whoami', href: profilePath(user.username), title: user.display_name,
      testid: 'whoami' }, avatar(user, 'sm'), el('span', { text: handle(user.username) })),
    signOutButton,
  ];
}

function signedOutNav() {
  return [
    el('a', { class: 'btn btn-ghost btn-sm', href: '/#signin', testid: 'signin-link', text: 'Sign in' }),
    el('a', { class: 'btn btn-primary btn-sm', href: '/#signup', testid: 'signup-link', text: 'Sign up' }),
  ];
}

function paint(root, user) {
  const nav = el('nav', { class: 'account-nav', testid: 'account-nav', 'aria-label': 'Account' },
    user ? signedInNav(user) : signedOutNav());
  root.replaceChildren(el('div', { class: 'site-header-inner' }, brand(), nav));
  root.dataset.state = user ? 'signed-in' : 'signed-out';
  paintUnread(root, unread);
  paintNotifications(root);
}

/**
 * Keep the badge current. With the page's SharedSocket it is live: `dm:unread`
 * on connect, then every `dm:unread` push. Pages that do not pass one get the
 * count once, and again whenever the tab comes back into view, over a short-lived
 * connection: a second long-lived socket per page would double the server's
 * connections (and Chromium's offline emulation closes only one of them).
 */
function followUnread(root, socket) {
  const refresh = async () => {
    if (!currentUser()) return;
    try {
      if (socket) {
        paintUnread(root, (await socket.ask('dm:unread', {})).total);
        return;
      }
      const once = await connectSocket();
      try {
        paintUnread(root, (await ask(once, 'dm:unread', {})).total);
      } finally {
        once.disconnect();
      }
    } catch {
      // Not reachable now; the next push, reconnect or visit repaints it.
    }
  };
  if (socket) {
    socket.on('dm:unread', ({ total }) => paintUnread(root, total));
    socket.on('connect', refresh); // a new socket: ask again (pushes may have been missed)
  } else {
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') refresh();
    });
  }
  onSessionChange(() => {
    unread = 0;
    paintUnread(root, 0);
    refresh();
  });
  refresh();
}

/**
 * Render the header into `root` (default: the page's data-testid="site-header")
 * and keep it current. The stored session is checked with the server once:
 * a refused token signs the page out. Pass the page's SharedSocket as
 * `socket` so the unread badge shares its connection.
 */
export function renderHeader(root = document.querySelector('[data-testid="site-header"]'),
  { socket = null } = {}) {
  paint(root, currentUser());
  onSessionChange((user) => paint(root, user));
  followUnread(root, socket);
  followNotifications(root, socket);
  verifySession().catch(() => {
    // Server unreachable: keep showing the stored session; the next request will tell.
  });
  finishSignOut().catch(() => {}); // unreachable again: the next page load retries
  return root;
}
