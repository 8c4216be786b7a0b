"""Chromium behind a firewall that lets only TURN through: a real `golive serve` told
`--ice-transport-policy relay` and a real coturn on loopback. The studio and the viewer's
page pass `iceTransportPolicy: "relay"` with the credentials golive made for each; the
creator goes live and the viewer plays, both through coturn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.browser import chromium, chromium_path, open_page, screenshot  # noqa: F401
from tests.support.pages import person, studio_go_live, wait_playing
from tests.support.servers import TEST_SECRET, ServerProcess
from tests.support.turn import Coturn, coturn  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

# Keeps every RTCPeerConnection a page makes (and its configuration) where the test can
# ask it for its stats.
RECORD_PEERS = """(() => {
  const Original = window.RTCPeerConnection;
  window.__peers = [];
  window.RTCPeerConnection = function (config) {
    const pc = new Original(config);
    window.__peers.push({ pc, config });
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
})();"""

# The last peer connection's configuration and the local candidate type of its selected
# pair ('' until one is selected).
SELECTED = """async () => {
  const { pc, config } = window.__peers[window.__peers.length - 1];
  const stats = await pc.getStats();
  let local = '';
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      local = stats.get(pair.localCandidateId).candidateType;
    }
  });
  return { policy: config.iceTransportPolicy ?? null, servers: config.iceServers, local };
}"""


@pytest.fixture
def relay_server(server_factory: Any, redis_url: str, redis: Redis,
                 coturn: Coturn) -> ServerProcess:  # noqa: F811
    return server_factory(redis_url=redis_url, env={  # type: ignore[no-any-return]
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200",
        "GOLIVE_TURN_URLS": coturn.url, "GOLIVE_TURN_SECRET": coturn.secret,
        "GOLIVE_ICE_TRANSPORT_POLICY": "relay"})


async def test_creator_and_viewer_go_through_coturn_only(
        chromium, relay_server: ServerProcess, coturn: Coturn, tmp_path: Path) -> None:  # noqa: F811
    async with (open_page(chromium, relay_server.url) as studio,
                open_page(chromium, relay_server.url) as viewer):
        for page in (studio, viewer):
            await page.add_init_script(RECORD_PEERS)
        alice = await person(studio, "alice")
        bob = await person(viewer, "bob")
        await studio_go_live(studio, "Behind a firewall")
        await viewer.goto("/@alice")
        await wait_playing(viewer)

        for page, who in ((studio, alice), (viewer, bob)):
            selected = await page.evaluate(SELECTED)
            assert selected["policy"] == "relay"
            (turn,) = selected["servers"]
            assert turn["urls"] == [coturn.url]
            assert turn["username"].endswith(":" + who["user"]["id"])
            assert selected["local"] == "relay"
            assert turn["username"] in coturn.allocated_users()
        await screenshot(viewer, "viewer-through-turn")
    # the startup line names the TURN URLs and the policy, never the secret
    assert f'"turn": ["{coturn.url}"]' in relay_server.log()
    assert coturn.secret not in relay_server.log()
