"""Every Redis key golive writes, named in one place.

Keys are per entity; a multi-key script only touches keys of the entities it
names, so a Redis Cluster move needs hash tags, not a rewrite.
"""

from __future__ import annotations


def user(user_id: str) -> str:
    return f"user:{user_id}"


def username(name: str) -> str:
    """Maps a lower-cased username to its user id (uniqueness is case-insensitive)."""
    return f"username:{name.lower()}"


def session(session_id: str) -> str:
    return f"session:{session_id}"


def followers(user_id: str) -> str:
    return f"followers:{user_id}"


def following(user_id: str) -> str:
    return f"following:{user_id}"


def blocks(user_id: str) -> str:
    """The set of users this user has blocked."""
    return f"blocks:{user_id}"


def blocked_by(user_id: str) -> str:
    """The set of users who blocked this user."""
    return f"blocked_by:{user_id}"


def live(creator_id: str) -> str:
    """The creator's current live (a hash); absent when offline."""
    return f"live:{creator_id}"


def live_directory() -> str:
    """Sorted set of live creators, scored by distinct viewers (Discover)."""
    return "lives"


def live_viewers(live_id: str) -> str:
    """Hash of viewer user id -> open connections watching that live."""
    return f"live_viewers:{live_id}"


def node_lives(node_id: str) -> str:
    """Set of creators whose live media a node hosts (cleaned when the node starts)."""
    return f"node_lives:{node_id}"
