/**
 * The gift tray under a live: one button per gift of the catalog (icon, name,
 * price in coins), the viewer's coin balance and "Get coins".
 *
 * A tap sends `gift:send` with a new transfer id (crypto.randomUUID()); when no
 * answer comes (a dropped connection) the same id is sent once more, so the
 * gift is applied at most once. The price is never sent: the server's catalog
 * decides it, and the ack's `sender_coins` is the balance shown after. Tapping
 * the same gift again within a few seconds makes a combo (xN), which the room
 * shows as one line and one badge in the video.
 *
 * "Get coins" lists the coin packages (GET /api/coins/packages) and buys one
 * with the built-in test provider (POST /api/coins/checkout), which pays at
 * once; a production server refuses it and the wallet page says how to pay.
 *
 * Money with care: the tray is offered only where gifts can be received
 * (`gift:status`: not for a creator under 18 or short of the follower
 * threshold; a viewer under 18 is told why instead of shown buttons), and a
 * gift dearer than the server's `confirm_above` (GOLIVE_GIFT_CONFIRM_COINS,
 * 1,000 coins) asks "Send Universe for 44,999 coins?" before it goes.
 * `onShown(shown)` hears each time the tray is shown or hidden, so a page's own
 * way into it (the watch page's Gift button on a phone) goes with it.
 *
 *   const tray = new GiftTray(sharedSocket, byTestId('gift-tray'), { onShown });
 *   tray.open(live, creator);   // a viewer watching `creator`
 *   tray.close();
 */

import { api } from './api.js';
import { byTestId, el, hideError, setBusy, showError } from './dom.js';
import { ErrorCode, GoliveError } from './errors.js';
import { formatCount } from './format.js';

const IDS = ['gift-buttons', 'gift-coins', 'get-coins', 'coin-packages', 'gift-error', 'gift-notice'];

/** The catalog and the packages change only with a server restart: load each once per page. */
let catalog = null;
let packages = null;

function loadOnce(path, key) {
  return api(path).then((reply) => reply[key]);
}

function money(cents, currency) {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

export class GiftTray {
  /**
   * @param {SharedSocket} socket the page's socket
   * @param {HTMLElement} root the tray
   * @param {object} [handlers]
   * @param {(shown: boolean) => void} [handlers.onShown] the tray was shown or hidden
   */
  constructor(socket, root, { onShown } = {}) {
    this.socket = socket;
    this.root = root;
    this.onShown = onShown ?? (() => {});
    this.ui = Object.fromEntries(IDS.map((id) => [id, byTestId(id, root)]));
    this.live = null;
    this.creator = null;
    this.coins = null;
    this.confirmAbove = 1000;
    /** The gift waiting for its confirmation: {gift, button}, or null. */
    this.pending = null;
    // Built here, not in the page, so any page holding a tray gets it.
    this.confirmBox = el('div', { class: 'gift-confirm', testid: 'gift-confirm', role: 'alertdialog',
      'aria-live': 'assertive', hidden: true },
    el('p', { testid: 'gift-confirm-text' }),
    el('div', { class: 'gift-confirm-actions' },
      el('button', { type: 'button', class: 'btn btn-sm btn-ghost', testid: 'gift-confirm-cancel',
        text: 'Cancel', on: { click: () => this.cancelConfirm() } }),
      el('button', { type: 'button', class: 'btn btn-sm btn-primary', testid: 'gift-confirm-send',
        text: 'Send', on: { click: () => this.confirmSend() } })));
    this.ui['gift-buttons'].before(this.confirmBox);
    this.ui['get-coins'].addEventListener('click', () => {
      hideError(this.ui['gift-error']);
      this.togglePackages();
    });
  }

  async open(live, creator) {
    // Opened again for the creator it shows (a re-join, a reconnect): it stays up while
    // gift:status is asked again, so a sheet someone is using does not blink shut.
    const again = !this.root.hidden && this.creator?.id === creator.id;
    this.live = live;
    this.creator = creator;
    this.cancelConfirm();
    hideError(this.ui['gift-error']);
    this.notice('');
    // No tray where no gift can be received: ask first, show after.
    if (!again) this.show(false);
    let status = null;
    try {
      status = await this.socket.ask('gift:status', { creator: creator.id });
    } catch {
      status = null; // unknown: offer the tray; gift:send refuses with the reason
    }
    if (this.live !== live) return;
    if (status) this.confirmAbove = status.confirm_above ?? this.confirmAbove;
    const refusal = status && !status.can_send ? status.refusal : null;
    this.root.dataset.state = refusal ? 'refused' : 'open';
    if (refusal && refusal.reason !== 'sender_minor') {
      this.show(false);
      return; // the creator cannot receive gifts: no tray at all
    }
    this.show(true);
    if (refusal) { // the viewer cannot send: say why, no buttons to tap
      this.ui['gift-buttons'].replaceChildren();
      this.notice(refusal.message);
      return;
    }
    try {
      catalog ??= loadOnce('/api/gifts', 'gifts');
      const gifts = await catalog;
      if (this.live !== live) return;
      this.ui['gift-buttons'].replaceChildren(...gifts.map((gift) => this.button(gift)));
    } catch (err) {
      catalog = null;
      showError(this.ui['gift-error'], err);
    }
    await this.refreshBalance();
  }

  close() {
    this.live = null;
    this.creator = null;
    this.cancelConfirm();
    this.show(false);
    this.ui['coin-packages'].hidden = true;
  }

  show(shown) {
    this.root.hidden = !shown;
    this.onShown(shown);
  }

  // --- confirming a dear gift --------------------------------------------------------------

  askConfirm(gift, button) {
    this.pending = { gift, button };
    byTestId('gift-confirm-text', this.confirmBox).textContent =
      `Send ${gift.name} for ${gift.coins.toLocaleString('en')} coins?`;
    this.confirmBox.hidden = false;
    this.confirmBox.scrollIntoView({ block: 'nearest' });
    byTestId('gift-confirm-send', this.confirmBox).focus();
  }

  cancelConfirm() {
    this.pending = null;
    if (this.confirmBox) this.confirmBox.hidden = true;
  }

  confirmSend() {
    const pending = this.pending;
    this.cancelConfirm();
    if (pending) this.send(pending.gift, pending.button, { confirmed: true });
  }

  button(gift) {
    return el('button', { type: 'button', class: 'gift-button', testid: 'gift-button',
      'data-gift': gift.id, title: `${gift.name}: ${gift.coins} coins`,
      on: { click: (event) => this.send(gift, event.currentTarget) } },
    el('img', { class: 'gift-icon', src: gift.icon, alt: '', width: 40, height: 40 }),
    el('span', { class: 'gift-name', text: gift.name }),
    el('span', { class: 'gift-price', testid: 'gift-price', text: `${gift.coins.toLocaleString('en')} coins` }));
  }

  // --- balance and coins -------------------------------------------------------------

  async refreshBalance() {
    try {
      const reply = await api('/api/wallet');
      this.setCoins(reply.balances?.coins ?? reply.coins ?? 0);
    } catch (err) {
      showError(this.ui['gift-error'], err);
    }
  }

  setCoins(coins) {
    this.coins = coins;
    this.ui['gift-coins'].textContent = formatCount(coins);
  }

  async togglePackages() {
    const box = this.ui['coin-packages'];
    if (!box.hidden) {
      box.hidden = true;
      return;
    }
    try {
      packages ??= loadOnce('/api/coins/packages', 'packages');
      const list = await packages;
      box.replaceChildren(...list.map((p) => el('button', { type: 'button', class: 'coin-package',
        testid: 'coin-package', 'data-package': p.id, on: { click: (e) => this.buy(p, e.currentTarget) } },
      el('strong', { text: `${formatCount(p.coins)} coins` }),
      el('span', { text: money(p.price_cents, p.currency) }))),
      el('a', { class: 'coin-wallet-link', href: '/wallet', text: 'Wallet and history' }));
      box.hidden = false;
    } catch (err) {
      packages = null;
      showError(this.ui['gift-error'], err);
    }
  }

  async buy(pkg, button) {
    hideError(this.ui['gift-error']);
    setBusy(button, true);
    try {
      await api('/api/coins/checkout', { method: 'POST', body: { package_id: pkg.id } });
      this.ui['coin-packages'].hidden = true;
      this.notice(`${formatCount(pkg.coins)} coins added.`);
      await this.refreshBalance();
    } catch (err) {
      showError(this.ui['gift-error'], err);
    } finally {
      setBusy(button, false);
    }
  }

  // --- sending -------------------------------------------------------------------------

  async send(gift, button, { confirmed = false } = {}) {
    const live = this.live;
    if (!live || !this.creator) return;
    if (!confirmed && gift.coins > this.confirmAbove) {
      this.askConfirm(gift, button); // nothing is sent until Send is tapped
      return;
    }
    hideError(this.ui['gift-error']);
    this.notice('');
    const payload = { transfer_id: crypto.randomUUID(), creator: this.creator.id, gift_id: gift.id, count: 1 };
    button.classList.add('sending');
    try {
      let reply;
      try {
        reply = await this.socket.ask('gift:send', payload);
      } catch (err) {
        if (!(err instanceof GoliveError) || err.code !== ErrorCode.UNAVAILABLE || err.details.status) throw err;
        reply = await this.socket.ask('gift:send', payload); // no answer: the same id again
      }
      if (this.live === live) this.setCoins(reply.receipt.sender_coins);
    } catch (err) {
      if (this.live !== live) return;
      if (err.code === ErrorCode.INSUFFICIENT_FUNDS) {
        this.ui['gift-error'].textContent = `Not enough coins for ${gift.name}: get coins first.`;
        this.ui['gift-error'].hidden = false;
        if (this.ui['coin-packages'].hidden) this.togglePackages();
      } else {
        showError(this.ui['gift-error'], err);
      }
    } finally {
      button.classList.remove('sending');
    }
  }

  notice(text) {
    this.ui['gift-notice'].textContent = text;
    this.ui['gift-notice'].hidden = !text;
  }
}
