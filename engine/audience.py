"""Who is in a live, as its viewer list shows them: top gifters first.

A plain rule over what Redis holds (the live's viewers and its gift leaderboard), so
tests call it directly; signaling/audience.py does the reads.
"""

from __future__ import annotations

from engine.anonymous import is_anonymous

# The list shows the first 100; the count beside it is the live's real viewer count.
LIST_MAX = 100


def viewer_order(viewer_ids: list[str], gifted: dict[str, int],
                 limit: int = LIST_MAX) -> tuple[list[tuple[str, int]], int]:
    """Signed-in viewers as (user id, coins gifted this live): gifters first, most coins
    first, then the rest by id (stable); at most `limit`. Also the number of anonymous
    (signed-out) viewers, who are counted but never listed."""
    signed_in = [v for v in viewer_ids if not is_anonymous(v)]
    anonymous = len(viewer_ids) - len(signed_in)
    ranked = sorted(signed_in, key=lambda v: (-gifted.get(v, 0), v))
    return [(v, gifted.get(v, 0)) for v in ranked[:limit]], anonymous


__all__ = ["LIST_MAX", "viewer_order"]
