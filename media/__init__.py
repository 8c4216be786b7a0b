"""golive media: ingest a creator's WebRTC stream, compose overlays, encode once per room and
fan the packets out to every viewer (aiortc). Knows rooms only as ids and overlays as values.
"""

from media.errors import MediaError, MediaErrorCode
from media.ice import HostAddressRestriction, IceServer, restrict_host_addresses
from media.overlay import POSITIONS, Overlay, draw_overlays
from media.peers import GoneReason
from media.room import MediaRoom, RoomTimings
from media.stats import RoomStats

__all__ = [
    "POSITIONS",
    "GoneReason",
    "HostAddressRestriction",
    "IceServer",
    "MediaError",
    "MediaErrorCode",
    "MediaRoom",
    "Overlay",
    "RoomStats",
    "RoomTimings",
    "draw_overlays",
    "restrict_host_addresses",
]
