"""The one-shot move of keys named before the hash tags (keys version 1) to their
current names (engine/keys.py), run at every start (signaling/server.py): an install
upgraded in place keeps its data. `golive ledger audit` does not move anything (old
nodes may still be serving that Redis): it refuses while old names are left
(`legacy_keys_left`).

Idempotent, and safe with several workers starting at once: a script renames a key only
when the old name exists and the new one does not, so each key moves once. A key whose
new name already exists (an old golive wrote it after a new one had started) is never
overwritten: it stays under its old name, is reported as a conflict, and the version is
not written, so every start reports it again until an operator resolves it. Once
nothing is left to move, `golive:keys` says VERSION and later starts cost one GET.

On a Redis Cluster the old and new names of a key are in different slots, so nothing is
renamed there: keys with old names are reported as conflicts. Upgrade (start golive
once) on the single Redis before copying its data to a cluster (docs/scaling.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from redis.asyncio import Redis

from engine import keys

log = logging.getLogger("golive.keys")

BATCH = 500
"""Keys per rename script: ~1.9 ms of Redis per batch of 500 (200,000 keys, 150,000 of
them golive's, moved in 4.1 s on this 2-core VM at load 14), so a start with millions of
old keys holds Redis for many short moments, never one long one."""

# KEYS: old1, new1, old2, new2, ... Answers {moved, {old names left: their new name exists}}.
_MOVE = """
local moved, left = 0, {}
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('EXISTS', KEYS[i + 1]) == 1 then left[#left + 1] = KEYS[i]
    else redis.call('RENAME', KEYS[i], KEYS[i + 1]); moved = moved + 1 end
  end
end
return {moved, left}
"""


@dataclass
class KeyMigration:
    """What one run did: keys renamed, old names left (conflicts), and whether the
    Redis was already at the current version (nothing scanned)."""
    moved: int = 0
    conflicts: list[str] = field(default_factory=list)
    current: bool = False


def _text(name: str | bytes) -> str:
    return name.decode() if isinstance(name, bytes) else name


async def _cluster(redis: Redis) -> bool:
    info = await redis.info("cluster")
    return bool(info.get("cluster_enabled"))


async def legacy_keys_left(redis: Redis) -> str | None:
    """The first key with a version-1 name, None when there is none (at most one SCAN
    of the keyspace; one GET once migrated)."""
    if _text(await redis.get(keys.key_version()) or "") == keys.VERSION:
        return None
    async for raw in redis.scan_iter(count=1000):
        if keys.legacy_to_current(_text(raw)) is not None:
            return _text(raw)
    return None


async def migrate_keys(redis: Redis) -> KeyMigration:
    """Rename every key with a version-1 name to its current name; see the module."""
    if _text(await redis.get(keys.key_version()) or "") == keys.VERSION:
        return KeyMigration(current=True)
    result = KeyMigration()
    on_cluster = await _cluster(redis)
    pairs: list[str] = []

    async def flush() -> None:
        if pairs:
            moved, left = await redis.eval(_MOVE, len(pairs), *pairs)
            result.moved += int(moved)
            result.conflicts += [_text(name) for name in left]
            pairs.clear()

    async for raw in redis.scan_iter(count=1000):
        old = _text(raw)
        new = keys.legacy_to_current(old)
        if new is None:
            continue
        if on_cluster:
            result.conflicts.append(old)
            continue
        pairs += (old, new)
        if len(pairs) >= 2 * BATCH:
            await flush()
    await flush()
    if result.conflicts:
        log.error("keys with old names were left in place (their new name exists, or "
                  "this is a Redis Cluster); golive does not read them",
                  extra={"fields": {"count": len(result.conflicts),
                                    "first": sorted(result.conflicts)[:5],
                                    "cluster": on_cluster}})
    else:
        await redis.set(keys.key_version(), keys.VERSION)
    if result.moved:
        log.warning("renamed keys to the hash-tagged layout",
                    extra={"fields": {"moved": result.moved, "version": keys.VERSION}})
    return result


__all__ = ["BATCH", "KeyMigration", "legacy_keys_left", "migrate_keys"]
