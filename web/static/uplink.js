/**
 * The creator's uplink, as the server receives it: a small badge over the studio
 * preview, "Uplink: good · 1.4 Mbps · 720p30", from the server's `live:uplink`
 * push (every ~2 s while live; media/uplink.py measures it on the ingest). Its
 * dot is green, amber or red (good, fair, poor); the reasons for anything less
 * than good ("loss 12%", "jitter 80 ms") are its tooltip and its spoken label.
 *
 *   const uplink = new UplinkBadge(element);
 *   socket.on('live:uplink', (push) => uplink.show(push));
 *   uplink.hide();   // off air
 */

const QUALITY = new Set(['good', 'fair', 'poor']);

/** "1.4 Mbps", "620 kbps". */
export function formatBitrate(bps) {
  if (!Number.isFinite(bps) || bps <= 0) return '0 kbps';
  if (bps >= 1_000_000) return `${(bps / 1_000_000).toFixed(1)} Mbps`;
  return `${Math.round(bps / 1000)} kbps`;
}

/** "Uplink: fair · 620 kbps · 480p30": what the badge says for one push. */
export function uplinkText({ quality, bitrate_bps: bps, height, fps }) {
  const parts = [`Uplink: ${quality}`, formatBitrate(bps)];
  if (height > 0) parts.push(`${height}p${Math.round(fps ?? 0)}`);
  return parts.join(' · ');
}

export class UplinkBadge {
  /** @param {HTMLElement} element the badge (hidden until the first push) */
  constructor(element) {
    this.element = element;
  }

  /** Paint one `live:uplink` push ({quality, reasons, bitrate_bps, fps, height...}). */
  show(push) {
    if (!push || !QUALITY.has(push.quality)) return;
    const reasons = Array.isArray(push.reasons) ? push.reasons.join(', ') : '';
    this.element.textContent = uplinkText(push);
    this.element.dataset.quality = push.quality;
    this.element.title = reasons || 'Your connection to the server is fine.';
    this.element.setAttribute('aria-label', reasons
      ? `${this.element.textContent}: ${reasons}` : this.element.textContent);
    this.element.hidden = false;
  }

  hide() {
    this.element.hidden = true;
    delete this.element.dataset.quality;
  }
}
