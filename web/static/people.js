/**
 * Finding people on the landing page: a search box (GET /api/users?q=, by
 * username or display name prefix, any case or accent; signed out too) and,
 * signed in while nobody is live, suggestions (`user:suggest`): people your
 * follows follow, and creators who went LIVE lately with a Nudge button.
 *
 *   const search = new PeopleSearch();               // binds the box
 *   const suggestions = new Suggestions(socket);
 *   suggestions.show(signedIn && nobodyLive);       // again when either changes
 */

import { api } from './api.js';
import { avatar } from './avatar.js';
import { byTestId, el, hideError, setBusy, showError } from './dom.js';
import { handle, profilePath } from './format.js';

/** A search waits this long after the last key: one request per pause in typing. */
export const SEARCH_PAUSE_MS = 200;

function personRow(user, testid, ...extra) {
  return el('li', { class: 'people-row', testid, 'data-user': user.username },
    el('a', { class: 'people-link', href: profilePath(user.username) },
      avatar(user, 'sm'),
      el('span', { class: 'people-name' },
        el('strong', { testid: `${testid}-name`, text: user.display_name }),
        el('span', { class: 'muted', text: handle(user.username) }))),
    ...extra);
}

export class PeopleSearch {
  constructor(root = document) {
    this.ui = Object.fromEntries(['people-search', 'people-query', 'people-results', 'people-none',
      'people-error'].map((id) => [id, byTestId(id, root)]));
    this.runs = 0;
    this.pause = null;
    this.ui['people-search'].addEventListener('submit', (event) => {
      event.preventDefault();
      clearTimeout(this.pause);
      this.search();
    });
    this.ui['people-query'].addEventListener('input', () => {
      clearTimeout(this.pause);
      this.pause = setTimeout(() => this.search(), SEARCH_PAUSE_MS);
    });
  }

  async search() {
    const q = this.ui['people-query'].value.trim();
    const run = ++this.runs;
    hideError(this.ui['people-error']);
    if (!q) {
      this.ui['people-results'].replaceChildren();
      this.ui['people-none'].hidden = true;
      return;
    }
    let reply;
    try {
      reply = await api(`/api/users?q=${encodeURIComponent(q)}&limit=10`);
    } catch (err) {
      if (run === this.runs) showError(this.ui['people-error'], err);
      return;
    }
    if (run !== this.runs) return; // a later search answers instead
    this.ui['people-results'].replaceChildren(...reply.users.map((u) => personRow(u, 'people-result')));
    this.ui['people-none'].hidden = reply.users.length > 0;
    this.ui['people-none'].textContent = `No one found for “${q}”.`;
  }
}

export class Suggestions {
  constructor(socket, root = document) {
    this.socket = socket;
    this.ui = Object.fromEntries(['suggestions', 'suggested-people', 'suggested-people-list',
      'recent-creators', 'recent-creators-list'].map((id) => [id, byTestId(id, root)]));
    this.wanted = false;
    this.loads = 0;
    /** Who was nudged from here: a later render (each Discover change renders again) keeps "Nudged". */
    this.nudged = new Set();
  }

  /** Show them (signed in, nobody live) or hide them. */
  async show(wanted) {
    this.wanted = wanted;
    const run = ++this.loads;
    if (!wanted) {
      this.ui.suggestions.hidden = true;
      return;
    }
    let reply;
    try {
      reply = await this.socket.ask('user:suggest', { limit: 8 });
    } catch {
      return; // no socket now: Discover still shows
    }
    if (run !== this.loads || !this.wanted) return;
    this.ui['suggested-people-list'].replaceChildren(
      ...reply.users.map((u) => personRow(u, 'suggested-person')));
    this.ui['recent-creators-list'].replaceChildren(
      ...reply.recent.map((u) => personRow(u, 'recent-creator', this.nudgeButton(u))));
    this.ui['suggested-people'].hidden = reply.users.length === 0;
    this.ui['recent-creators'].hidden = reply.recent.length === 0;
    this.ui.suggestions.hidden = reply.users.length + reply.recent.length === 0;
  }

  nudgeButton(user) {
    const button = el('button', { type: 'button', class: 'btn btn-sm btn-ghost', testid: 'recent-creator-nudge',
      'aria-label': `Nudge ${user.display_name} to go live`, text: 'Nudge', 'data-user': user.id });
    const paintNudged = (node) => {
      node.textContent = 'Nudged';
      node.dataset.state = 'nudged';
      node.disabled = true;
      node.removeAttribute('aria-busy');
    };
    if (this.nudged.has(user.id)) {
      paintNudged(button);
      return button;
    }
    button.addEventListener('click', async () => {
      setBusy(button, true);
      try {
        await this.socket.ask('nudge:send', { user_id: user.id });
        this.markNudged(user.id, button, paintNudged);
        return;
      } catch (err) {
        if (err.details?.reason === 'already_nudged') {
          this.markNudged(user.id, button, paintNudged);
          return;
        }
        button.textContent = 'Not now';
        button.title = err.message;
      }
      setBusy(button, false);
      button.disabled = true;
    });
    return button;
  }

  /** The list may have been rendered again while asking: paint the button shown now too. */
  markNudged(userId, button, paint) {
    this.nudged.add(userId);
    const shown = this.ui['recent-creators-list'].querySelectorAll('[data-testid="recent-creator-nudge"]');
    for (const node of [button, ...shown]) if (node.dataset.user === userId) paint(node);
  }
}
