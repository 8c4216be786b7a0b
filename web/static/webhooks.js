/**
 * The webhooks page (/webhooks): add an HTTPS endpoint (its signing secret is shown
 * once), list endpoints with their last deliveries and failures, send a test event,
 * redeliver a past event (same event id), rotate the secret, remove an endpoint.
 *
 * Everything comes from /api/me/webhooks (signaling/webhooks_http.py); deliveries
 * refresh every few seconds while the page is open, so a retry shows as it happens.
 */

import { api, segment } from './api.js';
import { byTestId, el, hideError, setBusy, showError } from './dom.js';
import { renderHeader } from './header.js';
import { currentUser, onSessionChange } from './session.js';

const REFRESH_MS = 3000;

const ui = Object.fromEntries(['hooks-signed-out', 'hooks', 'hook-form', 'hook-url', 'hook-events',
  'hook-add', 'hook-error', 'hook-secret-box', 'hook-secret', 'hooks-empty', 'hooks-list']
  .map((id) => [id, byTestId(id)]));

let events = [];
let timer = null;
let loads = 0;

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString('en', { hour12: false }) : '';
}

function showSecret(secret) {
  ui['hook-secret'].textContent = secret;
  ui['hook-secret-box'].hidden = !secret;
}

function paintEventChoices() {
  const legend = ui['hook-events'].querySelector('legend');
  ui['hook-events'].replaceChildren(legend, ...events.map((name) => el('label', {},
    el('input', { type: 'checkbox', value: name, checked: true, testid: `hook-event-${name}` }),
    name)));
}

function deliveryRow(endpoint, d) {
  const redeliver = el('button', { type: 'button', class: 'btn btn-ghost btn-sm', testid: 'redeliver',
    text: 'Redeliver', on: { click: (e) => act(e.currentTarget,
      `/api/me/webhooks/${segment(endpoint.id)}/deliveries/${segment(d.id)}/redeliver`) } });
  const outcome = d.error ? `${d.status}: ${d.error}` : d.status;
  return el('tr', { testid: 'delivery', 'data-status': d.status, 'data-event-id': d.event_id },
    el('td', { class: 'col-when', text: when(d.updated_at || d.created_at) }),
    el('td', { class: 'col-event', text: d.type }),
    el('td', { class: 'delivery-status', 'data-status': d.status, testid: 'delivery-status',
      text: outcome }),
    el('td', { class: 'col-tries', text: String(d.attempts) }),
    el('td', { class: 'col-latency', text: d.latency_ms == null ? '' : `${Math.round(d.latency_ms)} ms` }),
    el('td', { class: 'col-action' }, redeliver));
}

function endpointItem(endpoint, rows) {
  const base = `/api/me/webhooks/${segment(endpoint.id)}`;
  const failures = rows.filter((d) => d.status === 'retrying' || d.status === 'dead').length;
  const table = rows.length ? el('table', { class: 'deliveries', testid: 'deliveries' },
    el('thead', {}, el('tr', {}, el('th', { class: 'col-when', text: 'When' }),
      el('th', { class: 'col-event', text: 'Event' }), el('th', { text: 'Status' }),
      el('th', { class: 'col-tries', text: 'Tries' }), el('th', { class: 'col-latency', text: 'Time' }),
      el('th', { class: 'col-action', text: '' }))),
    el('tbody', {}, rows.map((d) => deliveryRow(endpoint, d))))
    : el('p', { class: 'muted', text: 'No deliveries yet.' });
  return el('li', { class: 'hook', testid: 'hook', 'data-id': endpoint.id },
    el('div', { class: 'hook-head' },
      el('span', { class: 'hook-url', testid: 'hook-url-shown', text: endpoint.url }),
      el('div', { class: 'hook-actions' },
        el('button', { type: 'button', class: 'btn btn-ghost btn-sm', testid: 'hook-test', text: 'Send test',
          on: { click: (e) => act(e.currentTarget, `${base}/test`) } }),
        el('button', { type: 'button', class: 'btn btn-ghost btn-sm', testid: 'hook-rotate', text: 'New secret',
          on: { click: (e) => act(e.currentTarget, `${base}/rotate`) } }),
        el('button', { type: 'button', class: 'btn btn-ghost btn-sm', testid: 'hook-delete', text: 'Remove',
          on: { click: (e) => act(e.currentTarget, base, 'DELETE') } }))),
    el('p', { class: 'hook-meta', testid: 'hook-meta',
      text: `${endpoint.events.join(', ')} · secret ${endpoint.secret_hint}`
        + (failures ? ` · ${failures} failing` : '') }),
    table);
}

async function refresh() {
  const load = ++loads;
  const reply = await api('/api/me/webhooks');
  if (!events.length) {
    events = reply.events;
    paintEventChoices();
  }
  const histories = await Promise.all(reply.endpoints.map(
    (e) => api(`/api/me/webhooks/${segment(e.id)}/deliveries`).then((r) => r.deliveries)));
  if (load !== loads) return;
  ui['hooks-list'].replaceChildren(...reply.endpoints.map((e, i) => endpointItem(e, histories[i])));
  ui['hooks-empty'].hidden = reply.endpoints.length > 0;
  document.body.dataset.ready = 'true';
}

async function act(button, path, method = 'POST') {
  hideError(ui['hook-error']);
  setBusy(button, true);
  try {
    const reply = await api(path, { method });
    if (reply.secret) showSecret(reply.secret);
    await refresh();
  } catch (err) {
    showError(ui['hook-error'], err);
  } finally {
    setBusy(button, false);
  }
}

async function add(event) {
  event.preventDefault();
  hideError(ui['hook-error']);
  const chosen = [...ui['hook-events'].querySelectorAll('input:checked')].map((i) => i.value);
  setBusy(ui['hook-add'], true);
  try {
    const reply = await api('/api/me/webhooks', {
      method: 'POST', body: { url: ui['hook-url'].value.trim(), events: chosen } });
    ui['hook-url'].value = '';
    showSecret(reply.secret);
    await refresh();
  } catch (err) {
    showError(ui['hook-error'], err);
  } finally {
    setBusy(ui['hook-add'], false);
  }
}

async function show(user) {
  clearInterval(timer);
  timer = null;
  ui['hooks-signed-out'].hidden = Boolean(user);
  ui.hooks.hidden = !user;
  showSecret('');
  if (!user) return;
  try {
    await refresh();
  } catch (err) {
    showError(ui['hook-error'], err);
  }
  timer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
}

ui['hook-form'].addEventListener('submit', add);
renderHeader();
let shown = currentUser()?.id ?? null;
onSessionChange((user) => {
  if ((user?.id ?? null) === shown) return;
  shown = user?.id ?? null;
  show(user);
});
show(currentUser());
