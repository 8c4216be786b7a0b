/**
 * Nudges in the creator's studio: how many people are waiting for this LIVE
 * ("14 people are waiting", by the Go LIVE button), the nudge settings ("Allow
 * viewers to nudge you", "Also show nudges in Messages"), and insights: nudges
 * per day over the last 30 days and, for recent LIVEs, how many of the people
 * who nudged came to watch.
 *
 * The waiting count follows the server's `nudge:waiting` pushes (a new nudge, or
 * 0 when a LIVE starts and everyone waiting is told); "Did they come?" follows
 * `nudge:came` (a nudger joined the LIVE).
 *
 *   new NudgePanel(sharedSocket).open();
 */

import { byTestId, el, hideError, showError } from './dom.js';
import { formatCount } from './format.js';

/** "1 person is waiting", "14 people are waiting". */
export function waitingPhrase(count) {
  return count === 1 ? '1 person is waiting' : `${formatCount(count)} people are waiting`;
}

export class NudgePanel {
  constructor(socket, root = document) {
    this.socket = socket;
    this.ui = Object.fromEntries(['nudge-waiting', 'nudge-panel', 'nudge-allow', 'nudge-dm',
      'nudge-settings-error', 'nudge-days', 'nudge-days-total', 'nudge-lives']
      .map((id) => [id, byTestId(id, root)]));
    this.waiting = 0;
    socket.on('nudge:waiting', ({ waiting }) => {
      this.paintWaiting(waiting);
      this.loadInsights();
    });
    // A nudger came to the LIVE: "Did they come?" counts them now, not after a reload.
    socket.on('nudge:came', () => this.loadInsights());
    socket.on('connect', () => this.load());
    for (const [id, field] of [['nudge-allow', 'allow'], ['nudge-dm', 'dm']]) {
      this.ui[id].addEventListener('change', () => this.save(field, this.ui[id].checked));
    }
  }

  open() {
    this.ui['nudge-panel'].hidden = false;
    return this.load();
  }

  async load() {
    try {
      const { waiting, settings } = await this.socket.ask('nudge:waiting', {});
      this.paintWaiting(waiting);
      this.paintSettings(settings);
    } catch {
      // Not reachable now; the next connect loads it again.
    }
    await this.loadInsights();
  }

  paintWaiting(count) {
    this.waiting = Number(count) || 0;
    const line = this.ui['nudge-waiting'];
    line.dataset.count = String(this.waiting);
    line.textContent = this.waiting
      ? `${waitingPhrase(this.waiting)}: they nudged you and will be told when you go LIVE.`
      : 'No one is waiting yet. Viewers nudge you with the bell on your profile.';
    line.classList.toggle('waiting', this.waiting > 0);
  }

  paintSettings(settings) {
    this.ui['nudge-allow'].checked = Boolean(settings.allow);
    this.ui['nudge-dm'].checked = Boolean(settings.dm);
    this.ui['nudge-dm'].disabled = !settings.allow;
  }

  async save(field, value) {
    hideError(this.ui['nudge-settings-error']);
    try {
      const { settings } = await this.socket.ask('nudge:settings', { [field]: value });
      this.paintSettings(settings);
    } catch (err) {
      showError(this.ui['nudge-settings-error'], err);
      this.load();
    }
  }

  async loadInsights() {
    let insights;
    try {
      insights = await this.socket.ask('nudge:insights', {});
    } catch {
      return;
    }
    const peak = Math.max(1, ...insights.days.map((d) => d.nudges));
    this.ui['nudge-days'].replaceChildren(...insights.days.map((d) => el('span', {
      class: 'nudge-bar', testid: 'nudge-bar', title: `${d.day}: ${d.nudges}`,
      'data-day': d.day, 'data-count': String(d.nudges),
      style: { height: `${Math.round((d.nudges / peak) * 100)}%` },
    })));
    this.ui['nudge-days-total'].textContent =
      `${formatCount(insights.totals.nudges)} nudge${insights.totals.nudges === 1 ? '' : 's'} in the last 30 days`;
    this.ui['nudge-lives'].replaceChildren(...(insights.lives.length
      ? insights.lives.map((live) => el('li', { testid: 'nudge-live' },
        el('span', { class: 'nudge-live-title', text: live.title }),
        el('span', { class: 'muted', testid: 'nudge-live-came', text: live.nudgers
          ? `${live.came} of ${live.nudgers} who nudged you came`
          : 'no one had nudged you' })))
      : [el('li', { class: 'muted', text: 'Your LIVEs will show here with how many who nudged you came.' })]));
  }
}
