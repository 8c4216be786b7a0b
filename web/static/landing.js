/**
 * The landing page (/): sign up or sign in, then who you are and a link to
 * your profile. The Discover list of live rooms will join it later.
 */

import { signIn, signUp } from './accounts.js';
import { paintAvatar } from './avatar.js';
import { byTestId } from './dom.js';
import { bindForm } from './forms.js';
import { handle, profilePath } from './format.js';
import { renderHeader } from './header.js';
import { currentUser, onSessionChange } from './session.js';

/** A same-site path from ?next= to return to after signing in, or null. */
function nextPath() {
  const next = new URLSearchParams(location.search).get('next');
  // Only local paths: "//evil.example" and "/\\evil" would leave the site.
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : null;
}

function afterSignIn() {
  const next = nextPath();
  if (next) location.assign(next);
}

function paint(user) {
  byTestId('auth-forms').hidden = Boolean(user);
  byTestId('signed-in').hidden = !user;
  if (!user) return;
  paintAvatar(byTestId('signed-in-avatar'), user);
  byTestId('signed-in-name').textContent = `You're in, ${user.display_name}`;
  byTestId('signed-in-username').textContent = `Signed in as ${handle(user.username)}`;
  byTestId('my-profile-link').href = profilePath(user.username);
}

/** Put the cursor in the form the URL asks for (#signin, #signup). */
function focusFromHash() {
  if (currentUser()) return;
  const id = { '#signin': 'signin-username', '#signup': 'signup-username' }[location.hash];
  if (id) byTestId(id).focus();
}

const signupForm = byTestId('signup-form');
const signinForm = byTestId('signin-form');
const clearSignup = bindForm(signupForm, byTestId('signup-error'), async (values) => {
  await signUp(values);
  signupForm.reset();
  afterSignIn();
});
const clearSignin = bindForm(signinForm, byTestId('signin-error'), async ({ username, password }) => {
  await signIn(username, password);
  signinForm.reset();
  afterSignIn();
});

renderHeader();
paint(currentUser());
onSessionChange((user) => {
  clearSignup();
  clearSignin();
  paint(user);
});
focusFromHash();
window.addEventListener('hashchange', focusFromHash);
