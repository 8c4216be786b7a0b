/**
 * A profile page (/@username): who they are, their counts, and Follow / Block
 * (or editing, on your own profile), under their LIVE when they are live
 * (live-stage.js).
 *
 * Signed in, Message opens the conversation with them (/messages?to=username)
 * and Share sends this profile, or its LIVE, into one of your conversations.
 * While they are offline a bell nudges them to go live; followers can turn on
 * Live alerts (nudge.js).
 *
 * The profile loads over HTTP so signed-out visitors see it too; every change
 * (follow, unfollow, block, unblock, edit, the follower lists) goes through
 * Socket.IO acks, and the page shows what the ack says.
 */

import { api, segment } from './api.js';
import { avatar, paintAvatar } from './avatar.js';
import { byTestId, el, hideError, setBusy, showError } from './dom.js';
import { ErrorCode, describeError } from './errors.js';
import { bindForm } from './forms.js';
import { formatCount, handle, profilePath } from './format.js';
import { renderHeader } from './header.js';
import { LiveStage } from './live-stage.js';
import { showReplays } from './replay-list.js';
import { NudgeBell } from './nudge.js';
import { currentUser, onSessionChange, updateSessionUser } from './session.js';
import { SharedSocket } from './socket.js';

const BIO_MAX = 200;
const LIST_LIMIT = 50;

const ui = Object.fromEntries([
  'profile-loading', 'profile', 'profile-avatar', 'profile-display-name', 'profile-username',
  'relation-badges', 'followers-stat', 'following-stat', 'follower-count', 'following-count',
  'profile-bio', 'follow-button', 'block-button', 'edit-profile-button', 'signin-to-follow',
  'relation-note', 'action-error', 'profile-edit-form', 'edit-display-name', 'edit-bio',
  'edit-bio-count', 'edit-error', 'edit-cancel', 'user-list', 'user-list-title',
  'user-list-items', 'not-found', 'not-found-detail', 'load-error', 'load-error-detail',
  'load-retry', 'message-button', 'share-button', 'share-picker', 'share-title', 'share-list',
  'share-note',
].map((id) => [id, byTestId(id)]));

// Signed out, the socket is anonymous: a public LIVE plays and its chat reads.
const socket = new SharedSocket({ anonymous: true });
const stage = new LiveStage(socket, undefined, {
  onFollow: () => act(ui['follow-button'], 'user:follow'),
  onShareDm: () => {
    if (ui['share-picker'].hidden) openShare();
    ui['share-picker'].scrollIntoView({ block: 'center' });
  },
});
const bell = new NudgeBell(socket);
let viewer = currentUser();
/** The profile as last answered: {user, counts, relation?, is_self?}. */
let view = null;
/** 'followers' | 'following' while a list is open. */
let openList = null;
let acting = false;
/** Bumped by every load(); an answer to an older load is dropped. */
let loads = 0;

function requestedUsername() {
  const raw = location.pathname.replace(/^\/@/, '');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw; // a malformed %-escape: let the server say there is no such user
  }
}

// --- loading -----------------------------------------------------------------

function showOnly(section) {
  for (const id of ['profile-loading', 'profile', 'not-found', 'load-error']) {
    ui[id].hidden = id !== section;
  }
}

async function fetchProfile(username) {
  const path = `/api/users/${segment(username)}`;
  try {
    return await api(path);
  } catch (err) {
    // A stale token: api() signed the page out; show the profile as a visitor.
    if (err.code === ErrorCode.UNAUTHORIZED) return api(path, { token: null });
    throw err;
  }
}

async function load() {
  const username = view?.user.username ?? requestedUsername();
  const current = ++loads;
  let answer;
  try {
    answer = await fetchProfile(username);
  } catch (err) {
    if (current !== loads) return; // a newer load (say, after a sign-out) took over
    view = null;
    stage.reset();
    bell.reset();
    if (err.code === ErrorCode.NOT_FOUND) {
      ui['not-found-detail'].textContent = `There is no ${handle(username)} on golive.`;
      document.title = 'No such user · golive';
      showOnly('not-found');
    } else {
      ui['load-error-detail'].textContent = describeError(err);
      document.title = 'Profile · golive';
      showOnly('load-error');
    }
    return;
  }
  if (current !== loads) return;
  view = answer;
  if (view.user.username !== requestedUsername()) {
    history.replaceState(null, '', profilePath(view.user.username)); // /@Alice -> /@alice
  }
  render();
  showOnly('profile');
  // Signed in, this connects the socket (live:watch), so the first click does
  // not wait for the handshake either.
  stage.show({ user: view.user, live: view.live, isSelf: view.is_self, signedIn: Boolean(viewer) });
  showReplays(byTestId('replays'), view.user.username);
}

/** Re-read the profile over the socket after an action was refused. */
async function refresh() {
  try {
    view = await socket.ask('profile:get', { username: view.user.username });
    render();
  } catch (err) {
    if (err.code === ErrorCode.NOT_FOUND) await load();
  }
}

// --- rendering -----------------------------------------------------------------

function setCount(node, n) {
  node.textContent = formatCount(n);
  node.dataset.count = String(n);
}

function badges(relation, isSelf) {
  if (isSelf) return [el('span', { class: 'badge', testid: 'badge-you', text: 'You' })];
  if (!relation) return [];
  if (relation.friends) return [el('span', { class: 'badge', testid: 'badge-friends', text: 'Friends' })];
  if (relation.followed_by) {
    return [el('span', { class: 'badge', testid: 'badge-follows-you', text: 'Follows you' })];
  }
  return [];
}

function relationNote(relation, user) {
  if (relation?.blocking) return `You blocked ${handle(user.username)}. Unblock them to follow.`;
  if (relation?.blocked_by) return `You can't follow ${handle(user.username)}.`;
  return '';
}

function render() {
  const { user, counts, relation } = view;
  const isSelf = Boolean(view.is_self);
  const signedIn = Boolean(viewer);
  document.title = `${user.display_name} (${handle(user.username)}) · golive`;

  paintAvatar(ui['profile-avatar'], user);
  ui['profile-display-name'].textContent = user.display_name;
  ui['profile-username'].textContent = handle(user.username);
  ui['profile-bio'].textContent = user.bio ?? '';
  ui['relation-badges'].replaceChildren(...badges(relation, isSelf));
  setCount(ui['follower-count'], counts.followers);
  setCount(ui['following-count'], counts.following);
  // The lists come over the socket, so they need a signed-in viewer.
  ui['followers-stat'].disabled = !signedIn;
  ui['following-stat'].disabled = !signedIn;

  const follow = ui['follow-button'];
  const block = ui['block-button'];
  const other = signedIn && !isSelf && Boolean(relation);
  follow.hidden = !other || relation.blocking || relation.blocked_by;
  if (other) {
    follow.textContent = relation.following ? 'Unfollow' : 'Follow';
    follow.dataset.state = relation.following ? 'following' : 'not-following';
    follow.classList.toggle('btn-primary', !relation.following);
    follow.classList.toggle('btn-ghost', relation.following);
    block.textContent = relation.blocking ? 'Unblock' : 'Block';
    block.dataset.state = relation.blocking ? 'blocking' : 'not-blocking';
  }
  block.hidden = !other;
  // Message and Share (signed in; no message across a block).
  const message = ui['message-button'];
  message.hidden = !other || relation.blocking || relation.blocked_by;
  message.href = `/messages?to=${encodeURIComponent(user.username)}`;
  ui['share-button'].hidden = !signedIn || (other && (relation.blocking || relation.blocked_by));
  if (ui['share-button'].hidden) ui['share-picker'].hidden = true;
  ui['edit-profile-button'].hidden = !isSelf || !ui['profile-edit-form'].hidden;
  // Follow on the video: signed out it asks to sign in; following, it goes away.
  stage.setFollow({ visible: !isSelf && (!signedIn || (!follow.hidden && !relation?.following)) });
  const signin = ui['signin-to-follow'];
  signin.hidden = signedIn;
  signin.href = `/?next=${encodeURIComponent(profilePath(user.username))}#signin`;

  const note = other ? relationNote(relation, user) : '';
  ui['relation-note'].textContent = note;
  ui['relation-note'].hidden = !note;
  if (!isSelf) ui['profile-edit-form'].hidden = true;
  bell.show({ user, isSelf, signedIn, following: Boolean(relation?.following),
    blocked: Boolean(relation?.blocking || relation?.blocked_by) });
}

// --- follow and block ---------------------------------------------------------

async function act(button, event) {
  if (acting || !view) return;
  acting = true;
  hideError(ui['action-error']);
  setBusy(ui['follow-button'], true);
  setBusy(ui['block-button'], true);
  try {
    const reply = await socket.ask(event, { user_id: view.user.id });
    view = { ...view, relation: reply.relation, counts: reply.counts };
    render();
    if (openList) await showList(openList);
  } catch (err) {
    showError(ui['action-error'], err);
    // Refused because something changed meanwhile (a block, a deleted user):
    // show the profile as it is now, keeping the error in view.
    if (err.code === ErrorCode.FORBIDDEN || err.code === ErrorCode.NOT_FOUND) await refresh();
  } finally {
    setBusy(ui['follow-button'], false);
    setBusy(ui['block-button'], false);
    acting = false;
  }
  button.focus();
}

ui['follow-button'].addEventListener('click', (event) => {
  act(event.currentTarget, view?.relation?.following ? 'user:unfollow' : 'user:follow');
});
ui['block-button'].addEventListener('click', (event) => {
  act(event.currentTarget, view?.relation?.blocking ? 'user:unblock' : 'user:block');
});

// --- followers / following lists ----------------------------------------------

function listItem(user) {
  return el('li', {},
    el('a', { href: profilePath(user.username), testid: 'user-list-item' },
      avatar(user, 'md'),
      el('span', { class: 'names' },
        el('span', { text: user.display_name }),
        el('span', { text: handle(user.username) }))));
}

async function showList(kind) {
  openList = kind;
  ui['followers-stat'].setAttribute('aria-pressed', String(kind === 'followers'));
  ui['following-stat'].setAttribute('aria-pressed', String(kind === 'following'));
  ui['user-list-title'].textContent = kind === 'followers' ? 'Followers' : 'Following';
  ui['user-list'].hidden = false;
  try {
    const { users } = await socket.ask('user:list', { user_id: view.user.id, kind, limit: LIST_LIMIT });
    if (openList !== kind) return; // closed or switched meanwhile
    const empty = kind === 'followers' ? 'No followers yet.' : 'Not following anyone yet.';
    ui['user-list-items'].replaceChildren(...(users.length ? users.map(listItem)
      : [el('li', { class: 'empty', text: empty })]));
  } catch (err) {
    showError(ui['action-error'], err);
  }
}

function closeList() {
  openList = null;
  ui['user-list'].hidden = true;
  ui['user-list-items'].replaceChildren();
  ui['followers-stat'].setAttribute('aria-pressed', 'false');
  ui['following-stat'].setAttribute('aria-pressed', 'false');
}

for (const kind of ['followers', 'following']) {
  ui[`${kind}-stat`].addEventListener('click', () => {
    if (openList === kind) closeList();
    else showList(kind);
  });
}

// --- sharing this profile (or its LIVE) into a conversation --------------------------

function shareNote(text) {
  ui['share-note'].textContent = text;
  ui['share-note'].hidden = !text;
}

async function shareTo(conversation, button) {
  const live = Boolean(stage.live);
  setBusy(button, true);
  try {
    await socket.ask('dm:send', { to: conversation.with.id,
      share: { kind: live ? 'live' : 'profile', user_id: view.user.id } });
    shareNote(`Shared with ${conversation.with.display_name}.`);
  } catch (err) {
    shareNote(describeError(err));
  } finally {
    setBusy(button, false);
  }
}

async function openShare() {
  const picker = ui['share-picker'];
  if (!picker.hidden) {
    picker.hidden = true;
    return;
  }
  picker.hidden = false;
  shareNote('');
  ui['share-title'].textContent = stage.live
    ? `Share ${view.user.display_name}'s LIVE` : `Share ${handle(view.user.username)}`;
  ui['share-list'].replaceChildren(el('li', { class: 'empty', text: 'Loading…' }));
  try {
    const { conversations } = await socket.ask('dm:list', { limit: 20 });
    const rows = conversations.filter((c) => !c.pending && c.with.id !== view.user.id);
    ui['share-list'].replaceChildren(...(rows.length ? rows.map((c) => {
      const button = el('button', { type: 'button', class: 'share-target', testid: 'share-target' },
        avatar(c.with, 'sm'), el('span', { text: c.with.display_name }));
      button.addEventListener('click', () => shareTo(c, button));
      return el('li', {}, button);
    }) : [el('li', { class: 'empty', text: 'No conversations yet: message someone first.' })]));
  } catch (err) {
    ui['share-list'].replaceChildren();
    shareNote(describeError(err));
  }
}

ui['share-button'].addEventListener('click', openShare);

// --- editing your own profile ---------------------------------------------------

function countBio() {
  ui['edit-bio-count'].textContent = `${ui['edit-bio'].value.length}/${BIO_MAX}`;
}

const clearEditError = bindForm(ui['profile-edit-form'], ui['edit-error'], async (values) => {
  const { user } = await socket.ask('profile:update', { display_name: values.display_name, bio: values.bio });
  view = { ...view, user };
  updateSessionUser(user);
  ui['profile-edit-form'].hidden = true;
  render();
  ui['edit-profile-button'].focus();
});

ui['edit-profile-button'].addEventListener('click', () => {
  clearEditError();
  ui['edit-display-name'].value = view.user.display_name;
  ui['edit-bio'].value = view.user.bio ?? '';
  countBio();
  ui['profile-edit-form'].hidden = false;
  ui['edit-profile-button'].hidden = true;
  ui['edit-display-name'].focus();
});
ui['edit-cancel'].addEventListener('click', () => {
  ui['profile-edit-form'].hidden = true;
  render();
});
ui['edit-bio'].addEventListener('input', countBio);

// --- start ----------------------------------------------------------------------

ui['load-retry'].addEventListener('click', () => {
  showOnly('profile-loading');
  load();
});

renderHeader(undefined, { socket });
// A LIVE of this creator ended: its replay (if it was recorded) is listed once saved,
// which the server does right after it tells the end.
socket.on('live:ended', () => {
  for (const ms of [1500, 5000]) {
    setTimeout(() => { if (view) showReplays(byTestId('replays'), view.user.username); }, ms);
  }
});
onSessionChange((user) => {
  const samePerson = (user?.id ?? null) === (viewer?.id ?? null);
  viewer = user;
  if (samePerson) return; // only their details changed
  // Signed in, out, or as someone else: the relation and the socket are theirs no more.
  socket.close();
  stage.reset();
  bell.reset();
  closeList();
  ui['share-picker'].hidden = true;
  hideError(ui['action-error']);
  ui['profile-edit-form'].hidden = true;
  load();
});
load();
