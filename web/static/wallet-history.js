/**
 * One line of the wallet's history, from a journal entry as GET /api/wallet/history
 * gives it: {id, at, kind, changes: {coins|diamonds|pending|paid: signed int}, ...}.
 * Gifts carry {direction, gift: {id, name, icon}, count, with: {username, display_name}}.
 */

import { idTime, shortTime } from './chat-order.js';
import { el } from './dom.js';
import { handle } from './format.js';

/** Money is shown exactly: 15199 -> "15,199" (never "15.2K"). */
function exact(n) {
  return (Number(n) || 0).toLocaleString('en');
}

/** The balance a person cares about in this entry: [amount, unit]. */
function headline(item) {
  const c = item.changes || {};
  if (c.coins) return [c.coins, 'coins'];
  if (item.kind === 'cashout') return [-(c.pending || 0), 'diamonds'];
  if (item.kind === 'payout') return [c.paid || 0, 'diamonds'];
  if (c.diamonds) return [c.diamonds, 'diamonds'];
  return [0, 'diamonds'];
}

/** The amount as shown: a payout is money going out to you (↗, never a green +). */
function amountText(item, amount, unit) {
  if (item.kind === 'payout') return [`↗ ${exact(Math.abs(amount))} ${unit} paid out`, 'out'];
  const sign = amount > 0 ? '+' : amount < 0 ? '-' : '';
  return [`${sign}${exact(Math.abs(amount))} ${unit}`, amount > 0 ? 'plus' : amount < 0 ? 'minus' : ''];
}

function describe(item) {
  const who = item.with ? handle(item.with.username) : 'a deleted account';
  const gift = item.gift ? `${item.gift.name}${item.count > 1 ? ` x${item.count}` : ''}` : 'a gift';
  switch (item.kind) {
    case 'gift':
      return item.direction === 'sent' ? `Sent ${gift} to ${who}` : `${gift} from ${who}`;
    case 'purchase':
      return 'Bought coins';
    case 'cashout':
      return 'Cash-out requested';
    case 'payout':
      return 'Cash-out paid';
    case 'return':
      return 'Cash-out returned to your balance';
    default:
      return item.kind;
  }
}

function icon(item) {
  if (item.gift?.icon) {
    return el('img', { class: 'history-icon', src: item.gift.icon, alt: '', width: 32, height: 32 });
  }
  const glyph = { purchase: '+', cashout: '⏳', payout: '↗', return: '↩' }[item.kind] || '·';
  return el('span', { class: 'history-glyph', 'aria-hidden': 'true', text: glyph });
}

/** The <li> for one history item. */
export function historyItem(item) {
  const [amount, unit] = headline(item);
  const [text, style] = amountText(item, amount, unit);
  return el('li', { class: 'history-item', testid: 'history-item', 'data-kind': item.kind,
    'data-id': item.id },
  icon(item),
  el('span', { class: 'history-what' },
    el('span', { testid: 'history-text', text: describe(item) }),
    el('small', { text: shortTime(idTime(item.id)) })),
  el('span', { class: `history-amount ${style}`, testid: 'history-amount', text }));
}
