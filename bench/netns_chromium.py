"""Chromium inside a network namespace (bench/netns.py), driven by playwright from the
root namespace: a real browser viewer on a shaped link.

Playwright starts Chromium itself and talks to it over a pipe (--remote-debugging-pipe,
fds 3 and 4). `wrapper()` writes a small executable that playwright launches in place of
Chromium: it `exec`s `ip netns exec NS chromium "$@"`, so the pipe's fds pass through
unchanged and every socket Chromium opens (HTTP, WebSocket, ICE) lives in the namespace,
whose only way out is the shaped veth pair. The page must then load the server by the
root-side address of the pair (10.200.<n>.1), so the server listens on 0.0.0.0 and
gathers ICE candidates on that address too (GOLIVE_HOST, GOLIVE_ICE_ADDRESSES).

`PC_RECORDER` (an init script) keeps every RTCPeerConnection a page makes in
`window.__goliveTestPcs`, so `inbound_video()` and `outbound_video()` can read getStats()
without any hook in the pages themselves.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from pathlib import Path
from typing import Any

from bench.netns import Namespace

# Every RTCPeerConnection the page makes, kept for getStats (the pages keep theirs private).
PC_RECORDER = """(() => {
  const Native = window.RTCPeerConnection;
  if (!Native || window.__goliveTestPcs) return;
  window.__goliveTestPcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__goliveTestPcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();"""

# The inbound video of the newest connection that has one: getStats' inbound-rtp fields.
INBOUND_VIDEO = """async () => {
  for (const pc of (window.__goliveTestPcs || []).slice().reverse()) {
    if (pc.connectionState === 'closed') continue;
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        return {framesDecoded: s.framesDecoded || 0, frameHeight: s.frameHeight || 0,
                framesPerSecond: s.framesPerSecond || 0, freezeCount: s.freezeCount || 0,
                totalFreezesDuration: s.totalFreezesDuration || 0,
                packetsLost: s.packetsLost || 0, keyFramesDecoded: s.keyFramesDecoded || 0,
                framesDropped: s.framesDropped || 0, pliCount: s.pliCount || 0,
                nackCount: s.nackCount || 0, bytesReceived: s.bytesReceived || 0,
                connectionState: pc.connectionState};
      }
    }
  }
  return null;
}"""

# What a creator's page sends: the outbound video of the newest connection that has one.
OUTBOUND_VIDEO = """async () => {
  for (const pc of (window.__goliveTestPcs || []).slice().reverse()) {
    const stats = await pc.getStats();
    for (const s of stats.values()) if (s.type === 'outbound-rtp' && s.kind === 'video')
      return {frameHeight: s.frameHeight || 0, framesPerSecond: s.framesPerSecond || 0,
              qualityLimitationReason: s.qualityLimitationReason};
  }
  return null;
}"""

VIDEO_HEIGHT = "() => document.querySelector('[data-testid=live-video]').videoHeight"


def wrapper(namespace: Namespace, directory: Path, chromium: Path) -> Path:
    """An executable in `directory` that runs `chromium` with its arguments inside
    `namespace` (give it to playwright as executable_path)."""
    path = directory / f"chromium-in-{namespace.name}"
    argv = " ".join(shlex.quote(a) for a in namespace.exec_args(str(chromium)))
    path.write_text(f'#!/bin/sh\n# Chromium inside {namespace.name} (bench/netns_chromium.py)\n'
                    f'exec {argv} "$@"\n')
    path.chmod(0o755)
    return path


async def inbound_video(page: Any) -> dict[str, Any] | None:
    """The page's inbound video stats (framesDecoded, frameHeight, framesPerSecond,
    freezeCount, totalFreezesDuration, packetsLost...), None before it receives video.
    The page must have been opened with PC_RECORDER as an init script."""
    result: dict[str, Any] | None = await page.evaluate(INBOUND_VIDEO)
    return result


async def outbound_video(page: Any) -> dict[str, Any] | None:
    """What the page sends (frameHeight, framesPerSecond, qualityLimitationReason), None
    before it sends video. The page must have been opened with PC_RECORDER."""
    result: dict[str, Any] | None = await page.evaluate(OUTBOUND_VIDEO)
    return result


async def sending(page: Any, height: int, timeout_s: float) -> dict[str, Any] | None:
    """What the page sends once it sends `height` lines or more, read once a second, or
    what it sends after `timeout_s` (a creator's Chromium climbs to 720p as its uplink
    estimate grows: 11-17 s on this host); None if it sends no video."""
    deadline = time.monotonic() + timeout_s
    while True:
        sent = await outbound_video(page)
        if (sent and sent["frameHeight"] >= height) or time.monotonic() >= deadline:
            return sent
        await asyncio.sleep(1)
