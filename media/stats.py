"""A room's media figures, as a plain snapshot for logs and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RoomStats:
    """Counters since the room was created (a snapshot; take another to see change)."""

    room_id: str
    codec: str
    viewers: int
    publishing: bool
    frames_in: int  # decoded frames from the creator
    frames_skipped: int  # frames replaced by a newer one before the encoder got to them
    frames_encoded: int
    keyframes: int
    keyframe_requests: int  # joins, PLIs/FIRs and overflows, before throttling
    audio_packets: int
    viewer_drops: dict[str, int] = field(default_factory=dict)  # video frames dropped per viewer
    # frames encoded per rendition ("720", "360"...), since the room was created
    rendition_frames: dict[str, int] = field(default_factory=dict)
