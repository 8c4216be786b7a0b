/**
 * The landing page (/): sign up or sign in, then who you are with links to
 * your profile and your studio; below, finding people (people.js) and
 * Discover: who is live now, with suggestions while nobody is.
 */

import { signIn, signUp } from './accounts.js';
import { paintAvatar } from './avatar.js';
import { DiscoverList } from './discover.js';
import { byTestId, hideError, showError } from './dom.js';
import { ErrorCode, GoliveError } from './errors.js';
import { bindForm } from './forms.js';
import { handle, profilePath } from './format.js';
import { renderHeader } from './header.js';
import { PeopleSearch, Suggestions } from './people.js';
import { currentUser, onSessionChange, updateSessionUser } from './session.js';
import { SharedSocket } from './socket.js';

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

/** Upload a new profile photo; the server checks, crops and re-encodes it. */
async function uploadPhoto(file) {
  const error = byTestId('avatar-error');
  hideError(error);
  if (!file) return;
  if (file.size > 5 * 1024 * 1024) { // the server's limit, said before a long upload
    showError(error, new GoliveError(ErrorCode.INVALID, 'A photo is at most 5 MB.'));
    return;
  }
  try {
    const response = await fetch('/api/me/avatar', { method: 'PUT', body: file,
      // Signed in by the session cookie, as every request of the pages.
      headers: { 'Content-Type': file.type || 'application/octet-stream' } });
    const reply = await response.json().catch(() => null);
    if (!response.ok || !reply?.ok) throw GoliveError.fromPayload(reply?.error ?? { code: 'unavailable', message: 'The upload failed; try again.' });
    updateSessionUser(reply.user);
    paint(reply.user);
  } catch (err) {
    showError(error, err);
  }
}

byTestId('avatar-file').addEventListener('change', (event) => {
  uploadPhoto(event.target.files?.[0]);
  event.target.value = '';
});

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

const socket = new SharedSocket();
const suggestions = new Suggestions(socket);
/** Suggestions while signed in and nobody is live (Discover's own count says so). */
function suggestWhenQuiet() {
  const count = byTestId('discover-list').dataset.count;
  if (count === undefined) return; // Discover has not answered yet
  suggestions.show(Boolean(currentUser()) && count === '0');
}
const discover = new DiscoverList(socket);
new MutationObserver(suggestWhenQuiet).observe(byTestId('discover-list'),
  { attributes: true, attributeFilter: ['data-count'] });
new PeopleSearch();
let signedInAs = currentUser()?.id ?? null;

renderHeader(undefined, { socket });
paint(currentUser());
discover.start({ signedIn: Boolean(signedInAs) });
onSessionChange((user) => {
  clearSignup();
  clearSignin();
  paint(user);
  if ((user?.id ?? null) === signedInAs) return; // only their details changed
  signedInAs = user?.id ?? null;
  socket.close(); // the socket was the previous person's
  discover.start({ signedIn: Boolean(user) });
  suggestWhenQuiet();
});
focusFromHash();
window.addEventListener('hashchange', focusFromHash);
