"""Sessions ended elsewhere: a socket whose sign-in was revoked closes even when the
sign-out's word never reached this node.

Signing out disconnects the session's sockets on every node at once (END_SESSION on the
push bus, signaling/gateway.py). This sweep is the backstop for a node that missed the
word (its bus was reconnecting, or the node that took the sign-out could not publish):
every SWEEP_S it reads the records of the sessions its signed-in sockets use and closes
the sockets of those that ended. A socket's expiry needs no sweep: the gateway checks it
on every event.
"""

from __future__ import annotations

import logging

from signaling.feature import Feature
from signaling.gateway import Gateway
from signaling.services import Services
from signaling.tasks import OwnedTask, every

log = logging.getLogger("golive.sessions")

# How long a missed sign-out can leave a socket open. One GET per open session per
# sweep, pipelined: 10,000 sockets cost ~330 GETs a second on average.
SWEEP_S = 30.0


class SessionSweep(Feature):
    """Closes this node's sockets whose session was revoked (SWEEP_S apart)."""

    def __init__(self, gateway: Gateway, services: Services) -> None:
        super().__init__()
        self.gateway = gateway
        self.services = services
        self._runner = OwnedTask(
            lambda: every(SWEEP_S, self.sweep_once, log, "session sweep failed"),
            "session-sweep")

    async def on_open(self) -> None:
        self._runner.start()

    async def on_close(self) -> None:
        await self._runner.stop()

    async def sweep_once(self) -> list[str]:
        """Close the sockets of every revoked session open here; the session ids."""
        open_sessions = {conn.session.session_id: conn.user_id
                         for conn in list(self.gateway.connections.values())
                         if not conn.anonymous}
        ended = await self.services.sessions.ended(open_sessions)
        for session_id in ended:
            log.info("session ended elsewhere; closing its sockets",
                     extra={"fields": {"session": session_id[:8]}})
            await self.gateway.end_local_session(session_id)
        return ended


__all__ = ["SWEEP_S", "SessionSweep"]
