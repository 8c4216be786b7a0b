"""A viewer's socket drops in real Chromium against a real `golive serve`: its websocket
closes under it (no goodbye, what a lost network leaves), socket.io-client reconnects
on its own, and the watch page takes its held join back (room:resume) on a new socket:
the same single RTCPeerConnection, restarted ICE, the picture playing, and the creator's
count never moving."""

from __future__ import annotations

import pytest

from tests.browser import chromium, chromium_path  # noqa: F401 (fixtures)
from tests.support.pages import PATH, RECORD_PEERS, alice_live_bob_watching, wait_playing
from tests.support.poll import poll

pytestmark = pytest.mark.browser


@pytest.fixture
def live_server_workers() -> str:
    """One worker whatever GOLIVE_TEST_WORKERS says: holds are in the memory of the worker
    that served the join, and a new socket on another worker joins again (by design)."""
    return "1"

# Keeps every Socket.IO socket a page opens (the vendor script sets window.io: wrapped as
# it is set) and every room:state push they hear.
RECORD_SOCKETS = """(() => {
  window.__sockets = [];
  window.__states = [];
  let wrapped = null;
  Object.defineProperty(window, 'io', {
    configurable: true,
    get: () => wrapped,
    set: (original) => {
      wrapped = Object.assign((...args) => {
        const socket = original(...args);
        window.__sockets.push(socket);
        socket.on('room:state', ({ viewers }) => window.__states.push(viewers));
        // window.__spoilResume: the page's room:resume carries a token the server never
        // gave (as after a hold expired, or on another node)
        const emit = socket.emit.bind(socket);
        socket.emit = (event, payload, ...rest) => emit(event,
          event === 'room:resume' && window.__spoilResume ? { ...payload, token: 'A'.repeat(32) }
            : payload, ...rest);
        return socket;
      }, original);
    },
  });
})();"""

# The page's websocket closes under it: Engine.IO's transport is gone, socket.io-client's
# manager reconnects with a new socket id.
DROP = """() => {
  const socket = window.__sockets[window.__sockets.length - 1];
  const sid = socket.id;
  socket.io.engine.transport.ws.close();
  return sid;
}"""

SOCKET_ID = "() => { const s = window.__sockets[window.__sockets.length - 1]; " \
            "return s.connected ? s.id : null; }"


# Both pages record their peer connections and sockets.
RECORDING = (RECORD_PEERS, RECORD_SOCKETS)


async def test_a_viewer_whose_socket_drops_resumes_on_the_same_peer_connection(
        chromium, live_server) -> None:  # noqa: F811
    async with alice_live_bob_watching(chromium, live_server.url, "Dropping sockets",
                                       RECORDING) as (studio, viewer):
        watching = studio.get_by_test_id("studio-viewers")
        await poll(lambda: watching.text_content(), what="the studio's viewer count")

        async def counted() -> bool:
            return await watching.text_content() == "1"

        await poll(counted, what="the studio counting bob")
        before = await viewer.evaluate(PATH)
        assert before["state"] == "connected" and before["peers"] == 1
        states = len(await studio.evaluate("window.__states"))

        old_sid = await viewer.evaluate(DROP)

        async def resumed() -> bool:
            sid = await viewer.evaluate(SOCKET_ID)
            now = await viewer.evaluate(PATH)
            return (sid not in (None, old_sid) and now["state"] == "connected"
                    and now["local"] != before["local"] and now["remote"] != before["remote"])

        await poll(resumed, timeout=20,
                   what="a new socket, and ICE restarted over it on the same connection")
        assert (await viewer.evaluate(PATH))["peers"] == 1  # resumed, not rejoined
        await wait_playing(viewer)
        assert await viewer.get_by_test_id("live-viewers").text_content() == "1"
        # the creator's count never moved: no push for the drop nor for the resume
        assert 0 not in (await studio.evaluate("window.__states"))[states:]
        assert await watching.text_content() == "1"


async def test_a_refused_resume_falls_back_to_a_fresh_join(chromium, live_server) -> None:  # noqa: F811
    async with alice_live_bob_watching(chromium, live_server.url, "Dropping sockets",
                                       RECORDING) as (studio, viewer):
        assert (await viewer.evaluate(PATH))["peers"] == 1
        await viewer.evaluate("window.__spoilResume = true")
        await viewer.evaluate(DROP)

        async def rejoined() -> bool:
            now = await viewer.evaluate(PATH)
            return now["peers"] == 2 and now["state"] == "connected"

        await poll(rejoined, timeout=20, what="a fresh join on a new peer connection")
        await wait_playing(viewer)
        watching = studio.get_by_test_id("studio-viewers")

        async def counted() -> bool:
            return await watching.text_content() == "1"

        await poll(counted, what="bob counted once")
