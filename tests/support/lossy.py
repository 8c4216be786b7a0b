"""A lossy link without a network namespace: an inbound SRTP session that loses packets
before decrypting them (tests/test_live_uplink.py for the creator's uplink,
tests/media/test_renditions.py for a viewer's downlink)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pylibsrtp

from media import aiortc_private
from tests.support.poll import poll

W = TypeVar("W")


class DroppingInbound:
    """Wraps an inbound SRTP session and loses every 5th packet of one video SSRC for
    good (retransmissions too) while `dropping`: the receiver's reports show ~20% loss,
    as a link too thin would."""

    def __init__(self, session: pylibsrtp.Session, video_ssrc: int) -> None:
        self._session = session
        self._ssrc = video_ssrc
        self.dropping = True

    def unprotect(self, data: bytes) -> bytes:
        seq, ssrc = int.from_bytes(data[2:4], "big"), int.from_bytes(data[8:12], "big")
        if self.dropping and ssrc == self._ssrc and seq % 5 == 0:
            raise pylibsrtp.Error("lost on purpose")
        return self._session.unprotect(data)

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self._session.unprotect_rtcp(data)


async def wrap_viewer_srtp(viewer: Any,
                           wrapper: Callable[[pylibsrtp.Session, int], W] = DroppingInbound,
                           ) -> W:
    """Swap a DecodingViewer's inbound SRTP session (once its DTLS made one) for
    `wrapper(session, video_ssrc)`, a DroppingInbound by default, and return it."""
    dtls = viewer.pc.getTransceivers()[0].receiver.transport
    session = await poll(lambda: aiortc_private.srtp_inbound(dtls), what="the viewer's SRTP")
    wrapped = wrapper(session, viewer.video_ssrc())
    aiortc_private.set_srtp_inbound(dtls, wrapped)
    return wrapped
