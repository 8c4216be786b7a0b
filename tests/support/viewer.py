"""The decoding viewer client: one for the tests and the bench (bench.decoding_viewer)."""

from __future__ import annotations

from bench.decoding_viewer import DecodingViewer


def decoded_size(viewer: DecodingViewer) -> tuple[int, int] | None:
    """(width, height) of the last video frame the viewer decoded; None before the first."""
    frame = viewer.last_video
    return None if frame is None else (frame.width, frame.height)


__all__ = ["DecodingViewer", "decoded_size"]
