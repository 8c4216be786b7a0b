/**
 * The wallet page (/wallet): the coin balance and coin packages (bought with the
 * built-in test provider when the server runs it), the diamond balance with the
 * pending and paid amounts, cash-outs, and the history from the ledger's journal.
 *
 * Every figure comes from the server (GET /api/wallet); nothing is computed
 * here. A purchase or a cash-out sends an id made once per click, so a retried
 * request is applied once.
 */

import { api } from './api.js';
import { byTestId, el, hideError, setBusy, showError } from './dom.js';
import { renderHeader } from './header.js';
import { currentUser, onSessionChange } from './session.js';
import { historyItem } from './wallet-history.js';

/** Money is shown exactly: 15199 -> "15,199" (never "15.2K"). */
function exact(n) {
  return (Number(n) || 0).toLocaleString('en');
}

const PAGE = 20;

const ui = Object.fromEntries(['wallet-signed-out', 'wallet', 'coin-balance', 'provider-note',
  'packages', 'wallet-notice', 'coins-error', 'rate', 'diamond-balance', 'diamond-pending',
  'diamond-paid', 'diamond-carry', 'cashout-form', 'cashout-amount', 'cashout-submit', 'cashout-limits',
  'cashout-error', 'payouts', 'history', 'history-empty', 'history-more', 'history-error']
  .map((id) => [id, byTestId(id)]));

let oldest = null;   // the id of the oldest history item shown
let loads = 0;       // bumps on every (re)load so that stale answers are dropped

/** An idempotency id for one request (8-64 of A-Z a-z 0-9 _ -). */
function requestId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function money(cents, currency) {
  return new Intl.NumberFormat('en', { style: 'currency', currency }).format(cents / 100);
}

function notice(text) {
  ui['wallet-notice'].textContent = text;
  ui['wallet-notice'].hidden = !text;
}

function paintWallet(wallet) {
  const b = wallet.balances;
  ui['coin-balance'].textContent = exact(b.coins);
  ui['coin-balance'].dataset.value = String(b.coins);
  ui['diamond-balance'].textContent = exact(b.diamonds);
  ui['diamond-balance'].dataset.value = String(b.diamonds);
  ui['diamond-pending'].textContent = exact(b.pending_diamonds);
  ui['diamond-paid'].textContent = exact(b.paid_diamonds);
  if (wallet.rate) {
    const { coins_per_diamond: per, commission_pct: pct } = wallet.rate;
    ui.rate.textContent = `${per} coins make 1 diamond${pct ? `, after a ${pct}% commission` : ''}`;
  }
  const carry = b.carry_coins ?? 0;
  const per = wallet.rate?.coins_per_diamond;
  ui['diamond-carry'].hidden = !carry;
  ui['diamond-carry'].textContent = carry
    ? `+ ${exact(carry)} coin${carry === 1 ? '' : 's'} of gifts toward your next diamond`
      + (per ? ` (${exact(per)} make one): nothing is lost to rounding.` : '.')
    : '';
  if (wallet.cashout) {
    ui['cashout-limits'].textContent = `At least ${exact(wallet.cashout.min)} diamonds, `
      + `at most ${exact(wallet.cashout.daily_cap)} a day.`;
    ui['cashout-amount'].min = String(wallet.cashout.min);
  }
  if (wallet.payouts) {
    ui.payouts.replaceChildren(...wallet.payouts.map((p) => el('li', { testid: 'payout' },
      el('span', { text: `${exact(p.diamonds)} diamonds` }),
      el('span', { class: 'muted', testid: 'payout-status', text: p.status }))));
  }
}

function paintPackages(reply) {
  const test = reply.test_provider;
  ui['provider-note'].textContent = test
    ? 'Test payments: coins are added at once and no money moves.'
    : 'Coins are sold through our payment provider.';
  ui.packages.replaceChildren(...reply.packages.map((p) => el('button', {
    type: 'button', class: 'wallet-package', testid: 'package', 'data-package': p.id,
    disabled: !test, on: { click: (event) => buy(p, event.currentTarget) },
  }, el('strong', { text: `${exact(p.coins)} coins` }),
  el('span', { text: money(p.price_cents, p.currency) }))));
}

async function refreshWallet() {
  paintWallet(await api('/api/wallet'));
}

async function loadHistory({ more = false } = {}) {
  const load = loads;
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (more && oldest) query.set('before', oldest);
  hideError(ui['history-error']);
  try {
    const reply = await api(`/api/wallet/history?${query}`);
    if (load !== loads) return;
    const items = reply.items.map(historyItem);
    if (more) ui.history.append(...items);
    else ui.history.replaceChildren(...items);
    if (reply.items.length) oldest = reply.items[reply.items.length - 1].id;
    ui['history-more'].hidden = !reply.more;
    ui['history-empty'].hidden = ui.history.children.length > 0;
  } catch (err) {
    showError(ui['history-error'], err);
  }
}

async function buy(pkg, button) {
  hideError(ui['coins-error']);
  notice('');
  setBusy(button, true);
  try {
    const reply = await api('/api/coins/checkout', {
      method: 'POST', body: { package_id: pkg.id, checkout_id: requestId('chk') } });
    ui['coin-balance'].textContent = exact(reply.balances.coins);
    ui['coin-balance'].dataset.value = String(reply.balances.coins);
    notice(`${exact(reply.purchase.coins)} coins added.`);
    await Promise.all([refreshWallet(), loadHistory()]);
  } catch (err) {
    showError(ui['coins-error'], err);
  } finally {
    setBusy(button, false);
  }
}

async function cashOut(event) {
  event.preventDefault();
  hideError(ui['cashout-error']);
  const diamonds = Number(ui['cashout-amount'].value);
  if (!Number.isInteger(diamonds) || diamonds < 1) {
    ui['cashout-error'].textContent = 'Enter a whole number of diamonds.';
    ui['cashout-error'].hidden = false;
    return;
  }
  setBusy(ui['cashout-submit'], true);
  try {
    await api('/api/wallet/cashout', {
      method: 'POST', body: { request_id: requestId('cash'), diamonds } });
    ui['cashout-amount'].value = '';
    await Promise.all([refreshWallet(), loadHistory()]);
  } catch (err) {
    showError(ui['cashout-error'], err);
  } finally {
    setBusy(ui['cashout-submit'], false);
  }
}

async function show(user) {
  loads += 1;
  oldest = null;
  ui['wallet-signed-out'].hidden = Boolean(user);
  ui.wallet.hidden = !user;
  if (!user) return;
  try {
    const [wallet, packages] = await Promise.all([api('/api/wallet'), api('/api/coins/packages')]);
    paintWallet(wallet);
    paintPackages(packages);
  } catch (err) {
    showError(ui['coins-error'], err);
  }
  await loadHistory();
  document.body.dataset.ready = 'true';
}

ui['cashout-form'].addEventListener('submit', cashOut);
ui['history-more'].addEventListener('click', () => loadHistory({ more: true }));
renderHeader();
let shown = currentUser()?.id ?? null;
onSessionChange((user) => {
  if ((user?.id ?? null) === shown) return;
  shown = user?.id ?? null;
  show(user);
});
show(currentUser());
