"""golive's client side, for bots, encoders and players (docs/client.md).

`golive.client.GoliveClient` speaks the documented protocol (docs/protocol.md);
`golive.errors` its errors, `golive.pushes` its typed pushes, `golive.chat` the
exact-chat rule, `golive.whip` the WHIP and WHEP clients. The server's own packages
(signaling, engine, media) are not imported by it."""

from golive.client import GoliveClient, LiveChat, Receipt, Session
from golive.errors import GoliveError, NoAnswer, NotSent

__all__ = ["GoliveClient", "GoliveError", "LiveChat", "NoAnswer", "NotSent", "Receipt",
           "Session"]
