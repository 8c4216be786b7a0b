"""Network namespaces and shaping for the tests: the bench's module (bench/netns.py),
re-exported so tests import their helpers from tests/support."""

from bench.netns import (  # noqa: F401 (re-exports)
    PREFIX,
    Namespace,
    Shaping,
    clean_stale,
    listed,
    netem_reason,
    unavailable_reason,
)
