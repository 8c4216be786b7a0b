"""A decoding viewer in a child process (in a network namespace): the bench's module
(bench/netns_viewer.py), re-exported so tests import their helpers from tests/support."""

from bench.netns_viewer import FREEZE_MS, REPORT_EVERY_S, NamespacedViewer  # noqa: F401
