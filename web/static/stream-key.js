/**
 * The studio's "Stream from OBS" card: the WHIP URL and the stream key an encoder (OBS 30+
 * with the WHIP service, `golive whip`) sends as its Bearer token.
 *
 * The server keeps only a hash of the key, so the key is shown once, right after it is
 * made: masked until "Reveal", with "Copy"; after a reload the card says a key exists
 * and "New key" makes another (the old one stops working at once, so the page asks
 * first). POST /api/me/stream_key answers {stream_key, whip_url}; GET says whether a key
 * exists.
 *
 *   new StreamKeyPanel().open();
 */

import { api } from './api.js';
import { byTestId, hideError, setBusy, showError } from './dom.js';

const IDS = ['stream-key-panel', 'whip-url', 'stream-key', 'stream-key-state', 'stream-key-reveal',
  'stream-key-copy', 'whip-url-copy', 'stream-key-rotate', 'stream-key-error', 'stream-key-copied'];

export class StreamKeyPanel {
  constructor(root = document) {
    this.ui = Object.fromEntries(IDS.map((id) => [id, byTestId(id, root)]));
    this.key = null; // the key made on this page, if any (never stored: it is shown once)
    this.hasKey = false;
    this.ui['stream-key-reveal'].addEventListener('click', () => this.reveal());
    this.ui['stream-key-copy'].addEventListener('click', () => this.copy(this.key, 'Key copied.'));
    this.ui['whip-url-copy'].addEventListener('click',
      () => this.copy(this.ui['whip-url'].value, 'URL copied.'));
    this.ui['stream-key-rotate'].addEventListener('click', () => this.rotate());
  }

  async open() {
    this.ui['stream-key-panel'].hidden = false;
    try {
      const { has_key: hasKey, whip_url: url } = await api('/api/me/stream_key');
      this.hasKey = hasKey;
      this.ui['whip-url'].value = url;
    } catch (err) {
      showError(this.ui['stream-key-error'], err);
    }
    this.paint();
  }

  paint() {
    const { ui } = this;
    const shown = this.key !== null;
    ui['stream-key'].value = shown ? this.key : '';
    ui['stream-key'].hidden = !shown;
    ui['stream-key-reveal'].hidden = !shown;
    ui['stream-key-copy'].hidden = !shown;
    ui['stream-key-state'].textContent = shown
      ? 'Paste it in OBS as the Bearer Token. It is shown only now: the server keeps no copy.'
      : this.hasKey
        ? 'You have a stream key (hidden: the server keeps no copy). Make a new one to see it; the old one stops working.'
        : 'No stream key yet: make one to stream from OBS.';
    ui['stream-key-rotate'].textContent = this.hasKey ? 'New key' : 'Make a stream key';
  }

  reveal() {
    const input = this.ui['stream-key'];
    const masked = input.type === 'password';
    input.type = masked ? 'text' : 'password';
    this.ui['stream-key-reveal'].textContent = masked ? 'Hide' : 'Reveal';
    this.ui['stream-key-reveal'].setAttribute('aria-pressed', String(masked));
  }

  async copy(text, done) {
    if (!text) return;
    const note = this.ui['stream-key-copied'];
    try {
      await navigator.clipboard.writeText(text);
      note.textContent = done;
    } catch {
      // No clipboard (an insecure origin, a denied permission): select it to copy by hand.
      note.textContent = 'Select it and copy it by hand.';
    }
    note.hidden = false;
  }

  async rotate() {
    const button = this.ui['stream-key-rotate'];
    if (this.hasKey && !confirm('Make a new stream key? The old one stops working at once (an encoder using it cannot start a new stream).')) return;
    hideError(this.ui['stream-key-error']);
    setBusy(button, true);
    try {
      const { stream_key: key, whip_url: url } = await api('/api/me/stream_key', { method: 'POST' });
      this.key = key;
      this.hasKey = true;
      this.ui['whip-url'].value = url;
      this.ui['stream-key'].type = 'password';
      this.ui['stream-key-reveal'].textContent = 'Reveal';
      this.ui['stream-key-reveal'].setAttribute('aria-pressed', 'false');
      this.ui['stream-key-copied'].hidden = true;
    } catch (err) {
      showError(this.ui['stream-key-error'], err);
    } finally {
      setBusy(button, false);
    }
    this.paint();
  }
}
