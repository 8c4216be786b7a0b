"""ICE restart under a live DTLS/SRTP session: a peer whose network path changed gets a
new ICE connection, and keeps its DTLS association, its SRTP keys, its tracks and its
place in the room.

aiortc 1.16 cannot restart ICE: an offer or answer with new ICE credentials is taken
as the same connection (RTCIceTransport.start() runs once). So golive restarts ICE
beside aiortc's offer/answer machinery, with the same new-credentials exchange the
browsers make (RFC 8445 9, JSEP 5.2.1 `iceRestart`):

    1. `IceRestart.gather()`: a second aioice Connection, same role and servers, new
       ufrag/password, its host (and STUN/TURN) candidates gathered;
    2. the side that offers sends its previous SDP with that ICE in it (`with_ice`);
       the other side answers the same way; neither touches its RTCPeerConnection's
       descriptions (the m= sections, codecs, DTLS fingerprint and role are unchanged);
    3. `IceRestart.connect(remote_sdp)`: checks on the new connection while the old one
       still carries whatever it can; once a pair is nominated the DTLS transport is
       moved onto it (media/aiortc_private.py `swap_ice_connection`) and the old
       connection closed. DTLS never notices: its records simply arrive on new sockets.

Plain functions read and write the ICE lines of an SDP; the one class owns the
connection until it is handed over (or closed on any failure or `close()`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aioice import Candidate, Connection
from aiortc import sdp
from aiortc.rtcicetransport import candidate_from_aioice, candidate_to_aioice

from media import aioice_private, aiortc_private
from media.errors import invalid

# aioice's check list gives up on its own (~7 retransmissions, ~40 s); a restart that
# has not nominated a pair by then will not: the client tries again or rejoins.
CONNECT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class IceDescription:
    """The ICE part of one SDP (its first media section: golive bundles everything), and
    its DTLS fingerprints: a restart's must be those of the session it continues."""

    ufrag: str
    pwd: str
    candidates: tuple[Candidate, ...]
    fingerprints: frozenset[str] = frozenset()
    # a=end-of-candidates: no more will come. Chromium's SDP never says so (and its host
    # candidates are mDNS names aioice may not resolve): its pair is then learnt from its
    # own checks (peer-reflexive), so a restart must not give up on an empty list.
    complete: bool = False


def read_ice(text: object, what: str = "description") -> IceDescription:
    """The ICE credentials and candidates of an SDP. Raises MediaError invalid."""
    if not isinstance(text, str) or not text.lstrip().startswith("v=0"):
        raise invalid(f"{what} is not SDP (it must start with v=0)")
    ufrag = pwd = None
    candidates: list[Candidate] = []
    fingerprints: set[str] = set()
    complete = False
    for line in text.splitlines():
        if line.startswith("m=") and ufrag is not None:
            break  # the first section's ICE is the bundle's
        if line.startswith("a=end-of-candidates"):
            complete = True
        elif line.startswith("a=fingerprint:"):
            fingerprints.add(line.split(":", 1)[1].strip().lower())
        elif line.startswith("a=ice-ufrag:"):
            ufrag = line.split(":", 1)[1].strip()
        elif line.startswith("a=ice-pwd:"):
            pwd = line.split(":", 1)[1].strip()
        elif line.startswith("a=candidate:"):
            try:
                # aiortc asserts the field count (an AssertionError, not a ValueError)
                candidate = sdp.candidate_from_sdp(line.split(":", 1)[1])
            except (AssertionError, ValueError, IndexError, KeyError) as exc:
                raise invalid(f"{what} has a bad candidate line: {exc or 'too few fields'}"
                              ) from None
            candidate.component = candidate.component or 1
            candidates.append(candidate_to_aioice(candidate))
    if not ufrag or not pwd:
        raise invalid(f"{what} lacks ICE credentials (a=ice-ufrag, a=ice-pwd)")
    return IceDescription(ufrag, pwd, tuple(candidates), frozenset(fingerprints), complete)


def with_ice(text: str, ice: IceDescription) -> str:
    """`text` (an SDP this side made before) with `ice` in every media section: its
    credentials, its candidates (RTP component only: golive muxes RTCP) and, as the
    default address on the m= and c= lines, its first candidate; the origin's session
    version is bumped (RFC 3264 8: a changed description gets a higher version)."""
    first = next((c for c in ice.candidates if c.component == 1), None)
    lines_in = text.split("\r\n") if "\r\n" in text else text.split("\n")
    out: list[str] = []
    for line in lines_in:
        if line.startswith("o="):
            fields = line.split(" ")
            if len(fields) >= 3 and fields[2].isdigit():
                fields[2] = str(int(fields[2]) + 1)
            out.append(" ".join(fields))
        elif line.startswith("m=") and first is not None:
            fields = line.split(" ")
            fields[1] = str(first.port)
            out.append(" ".join(fields))
        elif line.startswith("c=") and first is not None:
            out.append(f"c=IN {'IP6' if ':' in first.host else 'IP4'} {first.host}")
        elif line.startswith("a=ice-ufrag:"):
            out.append(f"a=ice-ufrag:{ice.ufrag}")
        elif line.startswith("a=ice-pwd:"):
            out.append(f"a=ice-pwd:{ice.pwd}")
            out.extend("a=candidate:" + sdp.candidate_to_sdp(candidate_from_aioice(c))
                       for c in ice.candidates if c.component == 1)
            out.append("a=end-of-candidates")
        elif line.startswith(("a=candidate:", "a=end-of-candidates")):
            continue
        else:
            out.append(line)
    return "\r\n".join(out)


class IceRestart:
    """One ICE restart of one peer connection (bundled: one ICE transport)."""

    def __init__(self, dtls: object) -> None:
        self._dtls = dtls
        self._old: Connection = aiortc_private.ice_connection(dtls)
        self._new: Connection | None = None
        self.local: IceDescription | None = None
        self.handed_over = False
        self.started_at = time.monotonic()
        self.took_s: float | None = None  # from gather() to the hand-over

    async def gather(self) -> IceDescription:
        """Make the new connection and gather its candidates; its ICE for the SDP."""
        self._new = aioice_private.sibling_connection(self._old)
        await self._new.gather_candidates()
        self.local = IceDescription(self._new.local_username, self._new.local_password,
                                    tuple(self._new.local_candidates))
        return self.local

    async def connect(self, remote: IceDescription,
                      on_moved: Callable[[], None] | None = None) -> None:
        """Check and nominate a pair with the remote side's new ICE, then move the DTLS
        transport onto it (`on_moved()` then, before the old sockets close). Raises
        ConnectionError when no pair works (the new connection is closed; the old one,
        if it still works, carries on). Without end-of-candidates in the remote SDP it
        waits for the remote side's checks: callers bound it (CONNECT_TIMEOUT_S)."""
        new = self._new
        if new is None:
            raise RuntimeError("gather() first")
        self.check(remote)
        new.remote_username = remote.ufrag
        new.remote_password = remote.pwd
        try:
            for candidate in remote.candidates:
                if candidate.component == 1:
                    await new.add_remote_candidate(candidate)
            if remote.complete:
                await new.add_remote_candidate(None)
            await new.connect()
        except BaseException:
            await self.close()
            raise
        await aiortc_private.swap_ice_connection(self._dtls, new, on_moved)
        self.handed_over = True
        self.took_s = time.monotonic() - self.started_at

    def check(self, remote: IceDescription, session_remote_sdp: str | None = None) -> None:
        """Raise MediaError invalid unless `remote` restarts ICE (new credentials) of this
        very session: its DTLS fingerprints are those of `session_remote_sdp` (the remote
        description the session was made with), which only the peer holding that
        certificate's key can continue, so another tab or device cannot take it over."""
        if remote.ufrag == self._old.remote_username:
            raise invalid("the description keeps its old ICE credentials: no restart")
        if session_remote_sdp is not None:
            session = read_ice(session_remote_sdp).fingerprints
            if remote.fingerprints != session:
                raise invalid("the description's DTLS fingerprint is not this connection's: "
                              "a restart continues the same peer connection")

    async def close(self) -> None:
        """Close the new connection unless it was handed over (idempotent)."""
        new, self._new = self._new, None
        if new is not None and not self.handed_over:
            await new.close()
