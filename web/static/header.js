/**
 * The header every page shares: the golive mark linking home, and either the
 * signed-in user (linking to their profile) with Sign out, or Sign in / Sign up.
 * It follows the session: signing in or out anywhere re-renders it.
 */

import { signOut, verifySession } from './accounts.js';
import { avatar } from './avatar.js';
import { el } from './dom.js';
import { handle, profilePath } from './format.js';
import { currentUser, onSessionChange } from './session.js';

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
}

/**
 * Render the header into `root` (default: the page's data-testid="site-header")
 * and keep it current. The stored session is checked with the server once:
 * a refused token signs the page out.
 */
export function renderHeader(root = document.querySelector('[data-testid="site-header"]')) {
  paint(root, currentUser());
  onSessionChange((user) => paint(root, user));
  verifySession().catch(() => {
    // Server unreachable: keep showing the stored session; the next request will tell.
  });
  return root;
}
