"""The decoding viewer client: one for the tests and the bench (bench.decoding_viewer)."""

from bench.decoding_viewer import DecodingViewer

__all__ = ["DecodingViewer"]
