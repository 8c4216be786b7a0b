"""Replays at the edge: recording the LIVEs their creators chose to record, keeping them
within their caps and lifetime, and serving them.

A creator asks for a recording with `record: true` on live:start (the studio's checkbox).
The live's room then has a media/recorder.py tap: the top rendition's encoded packets,
gifts burnt in, go to DATA_DIR/replays/LIVE_ID/video.{webm,mp4}. When the live ends
(live:end, the grace period over, the server stopping) the file is closed, the live's
chat is saved beside it (chat.json, each line with its offset in the video) and only
then is the replay in Redis (engine/replays.py): a crash leaves files the sweep removes.

Caps: the recording stops at GOLIVE_REPLAY_MAX_BYTES (the creator gets
`live:recording` {recording: false, reason: "size_cap"}; the replay keeps what was
recorded); a new replay evicts its creator's oldest past GOLIVE_REPLAY_CREATOR_MAX_BYTES;
a replay expires GOLIVE_REPLAY_DAYS after its live ended (the sweep, every
GOLIVE_REPLAY_SWEEP seconds, deletes its files and metadata).

Who may watch a replay is who may watch its live: signed-out visitors unless the live
was for signed-in viewers, never a user the creator blocked or who blocked them, never
one banned from the creator's lives. The HTTP routes:

    GET    /api/users/{username}/replays   the creator's replays the caller may watch
    GET    /api/replays/{replay_id}        one replay and its chat
    DELETE /api/replays/{replay_id}        its creator deletes it
    GET    /replays/{replay_id}/video      the file (Range requests: aiohttp FileResponse)
    GET    /replays/{replay_id}/thumb.jpg  its thumbnail (a keyframe ~1 s in)
    GET    /replay/{replay_id}             the page (web/replay.html)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from engine import stream_ids
from engine.errors import DomainError, ErrorCode, forbidden, not_found
from engine.lives import Live
from engine.replays import (
    Replay,
    Replays,
    chat_for_replay,
    check_may_watch_replay,
    due,
    expires_at,
    over_total_cap,
)
from media.recorder import MEDIA_TYPES, THUMB_FILE, Recorder, RecordingResult, remove_tree
from media.room import MediaRoom
from signaling.config import Settings
from signaling.feature import Feature
from signaling.gateway import Gateway, user_room
from signaling.services import Services
from signaling.tasks import OwnedTask

log = logging.getLogger("golive.replays")

CHAT_FILE = "chat.json"
# A directory without metadata that nothing wrote to for this long is a recording a
# crash left (a live being recorded writes a fragment at least every keyframe, 2 s).
ABANDONED_AFTER_S = 3600.0
CAP_CHECK_S = 1.0  # how soon the creator hears that the cap stopped the recording
CHAT_PAGES_MAX = 50  # x the chat's history_max lines: far more than a stream holds


@dataclass
class Recording:
    live: Live
    media: MediaRoom
    recorder: Recorder
    told_capped: bool = False


def replay_dir(data_dir: Path, replay_id: str) -> Path:
    """Where a replay's files are: DATA_DIR/replays/REPLAY_ID (the live's id)."""
    return Path(data_dir) / "replays" / replay_id


def write_json_atomically(path: Path, value: Any) -> None:
    """Write `value` as JSON to `path` through a temporary file and a rename: a reader
    (or a crash) sees the old file or the whole new one."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as out:
        json.dump(value, out, ensure_ascii=False, separators=(",", ":"))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


class LiveReplays(Feature):
    """The recordings in progress on this node, the sweep and the replay routes' logic."""

    def __init__(self, gateway: Gateway, services: Services, settings: Settings) -> None:
        super().__init__()
        self.gateway = gateway
        self.services = services
        self.settings = settings
        self.store = Replays(services.redis)
        self.recordings: dict[str, Recording] = {}  # live id -> recording
        self._sweeper = OwnedTask(self._sweep_loop, "replay-sweep")
        self._cap_watch = OwnedTask(self._cap_loop, "replay-caps")

    @property
    def root(self) -> Path:
        return Path(self.settings.data_dir) / "replays"

    async def on_open(self) -> None:
        self._sweeper.start()
        self._cap_watch.start()

    async def on_close(self) -> None:
        # LiveRooms closes after this feature (opened before it) and finalizes the
        # recordings of the lives it ends; any left here are closed as they are.
        for live_id in list(self.recordings):
            recording = self.recordings.pop(live_id)
            recording.media.remove_tap(recording.recorder.tap)
            await asyncio.to_thread(recording.recorder.finish)
        await self._cap_watch.stop()
        await self._sweeper.stop()

    # --- recording ---------------------------------------------------------------

    def start(self, live: Live, media: MediaRoom) -> None:
        """Record `live` from now on (its room's next keyframe is the replay's start)."""
        if live.live_id in self.recordings or media.is_edge:
            return
        directory = replay_dir(self.settings.data_dir, live.live_id)
        recorder = Recorder(directory, media.codec, max_bytes=self.settings.replay_max_bytes)
        self.recordings[live.live_id] = Recording(live, media, recorder)
        media.add_tap(recorder.tap)
        media.request_keyframe()
        log.info("recording", extra={"fields": {"live": live.live_id, "file": str(recorder.path)}})

    def recording(self, live_id: str) -> bool:
        return live_id in self.recordings

    async def finish(self, live: Live, *, now: float | None = None) -> Replay | None:
        """The live ended: close its recording, save its chat, enter the replay in Redis
        and apply the creator's total cap. None when it was not recorded or holds no
        frame (its directory is removed)."""
        recording = self.recordings.pop(live.live_id, None)
        if recording is None:
            return None
        recording.media.remove_tap(recording.recorder.tap)
        result = await asyncio.to_thread(recording.recorder.finish)
        directory = result.path.parent
        if result.video_frames == 0:
            await asyncio.to_thread(remove_tree, directory)
            log.info("recording held no frame; dropped", extra={"fields": {"live": live.live_id}})
            return None
        chat = await self._chat(live, result)
        await asyncio.to_thread(write_json_atomically, directory / CHAT_FILE,
                                {"replay_id": live.live_id, "lines": chat})
        ended = time.time() if now is None else now
        replay = Replay(
            replay_id=live.live_id, creator_id=live.creator_id, title=live.title,
            started_at=result.started_at, ended_at=ended, duration_s=result.duration_s,
            bytes=result.path.stat().st_size, file=result.path.name,
            signed_in_only=live.signed_in_only, capped=result.capped,
            expires_at=expires_at(ended, self.settings.replay_days), chat_lines=len(chat),
            thumbnail=result.thumbnail)
        await self.store.save(replay)
        log.info("replay saved", extra={"fields": {
            "live": live.live_id, "bytes": replay.bytes, "seconds": replay.duration_s,
            "dropped": result.dropped, "capped": result.capped, "chat": len(chat)}})
        await self.enforce_total_cap(live.creator_id)
        return replay

    async def _chat(self, live: Live, result: RecordingResult) -> list[dict[str, Any]]:
        """The live's whole chat stream, as the replay keeps it."""
        items: list[dict[str, Any]] = []
        after = stream_ids.ZERO
        for _ in range(CHAT_PAGES_MAX):
            page = await self.services.chat.read(live.live_id, after=after)
            items.extend(item.as_dict() for item in page.items)
            after = page.last
            if not page.more:
                break
        return chat_for_replay(items, result.clock)

    async def _cap_loop(self) -> None:
        """Tell a creator when their recording stopped at the byte cap."""
        while True:
            await asyncio.sleep(CAP_CHECK_S)
            for recording in list(self.recordings.values()):
                if recording.recorder.capped and not recording.told_capped:
                    recording.told_capped = True
                    live = recording.live
                    log.info("recording stopped at its cap", extra={"fields": {
                        "live": live.live_id, "max_bytes": self.settings.replay_max_bytes}})
                    await self.gateway.push("live:recording", {
                        "live_id": live.live_id, "recording": False, "reason": "size_cap",
                        "max_bytes": self.settings.replay_max_bytes},
                        to=user_room(live.creator_id))

    # --- keeping -------------------------------------------------------------------

    async def delete(self, replay: Replay) -> None:
        """Delete a replay's files, then its metadata."""
        await asyncio.to_thread(remove_tree, replay_dir(self.settings.data_dir, replay.replay_id))
        await self.store.forget(replay)

    async def enforce_total_cap(self, creator_id: str) -> list[str]:
        """Evict the creator's oldest replays past GOLIVE_REPLAY_CREATOR_MAX_BYTES."""
        evicted = over_total_cap(await self.store.sizes(creator_id),
                                 self.settings.replay_creator_max_bytes)
        for replay_id in evicted:
            try:
                await self.delete(await self.store.get(replay_id))
            except DomainError:
                continue  # deleted meanwhile
            log.info("replay evicted by the creator's cap", extra={"fields": {
                "replay": replay_id, "creator": creator_id}})
        return evicted

    async def sweep(self, now: float | None = None) -> list[str]:
        """Delete the replays due to expire, and directories a crash left without
        metadata; the ids removed."""
        moment = time.time() if now is None else now
        removed = []
        for replay_id in due(await self.store.expiries(moment), moment):
            try:
                replay = await self.store.get(replay_id)
            except DomainError:
                continue
            await self.delete(replay)
            removed.append(replay_id)
            log.info("replay expired", extra={"fields": {"replay": replay_id}})
        removed += await self._sweep_abandoned(moment)
        return removed

    def _directories(self) -> list[tuple[Path, float]]:
        """(directory, its newest write) of every replay directory (on a thread)."""
        if not self.root.is_dir():
            return []
        found = []
        for directory in self.root.iterdir():
            if not directory.is_dir():
                continue
            try:
                newest = max((f.stat().st_mtime for f in directory.iterdir()),
                             default=directory.stat().st_mtime)
            except FileNotFoundError:
                continue  # removed meanwhile (another worker's sweep)
            found.append((directory, newest))
        return found

    async def _sweep_abandoned(self, now: float) -> list[str]:
        candidates = [(d, newest) for d, newest in await asyncio.to_thread(self._directories)
                      if d.name not in self.recordings]
        known = await self.store.known([d.name for d, _ in candidates])
        removed = []
        for directory, newest in candidates:
            if directory.name in known:
                continue
            if now - newest >= ABANDONED_AFTER_S:
                await asyncio.to_thread(remove_tree, directory)
                removed.append(directory.name)
                log.info("abandoned recording removed", extra={"fields": {
                    "replay": directory.name}})
        return removed

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("replay sweep failed")
            await asyncio.sleep(self.settings.replay_sweep)

    # --- watching ------------------------------------------------------------------

    async def check_may_watch(self, replay: Replay, user_id: str | None) -> None:
        """As for the live: `unauthorized` for a visitor of a signed-in-only replay,
        `forbidden` across a block or for a banned user; the creator always may."""
        check_may_watch_replay(replay, anonymous=user_id is None)
        if user_id is None or user_id == replay.creator_id:
            return
        await self.services.graph.check_may_interact(user_id, replay.creator_id, "watch")
        if await self.services.chat.is_banned(replay.creator_id, user_id):
            raise DomainError(ErrorCode.FORBIDDEN, "the creator banned you from their lives",
                              reason="banned")

    async def listed(self, creator_id: str, user_id: str | None) -> list[Replay]:
        """The creator's replays the caller may watch, newest first (none across a block
        or a ban)."""
        replays = await self.store.of_creator(creator_id)
        visible = []
        for replay in replays:
            try:
                await self.check_may_watch(replay, user_id)
            except DomainError as refusal:
                if refusal.code == ErrorCode.FORBIDDEN:
                    return []
                continue
            visible.append(replay)
        return visible

    def chat_of(self, replay: Replay) -> list[dict[str, Any]]:
        """The replay's saved chat lines (empty when its file is missing)."""
        path = replay_dir(self.settings.data_dir, replay.replay_id) / CHAT_FILE
        try:
            return list(json.loads(path.read_text(encoding="utf-8"))["lines"])
        except (OSError, ValueError, KeyError):
            return []

    def video_path(self, replay: Replay) -> Path:
        return replay_dir(self.settings.data_dir, replay.replay_id) / replay.file


# --- HTTP --------------------------------------------------------------------------

REPLAYS = web.AppKey("replays", LiveReplays)


def _replay_id(request: web.Request) -> str:
    replay_id = request.match_info["replay_id"]
    if not (len(replay_id) == 16 and all(c in "0123456789abcdef" for c in replay_id)):
        raise not_found("no such replay")
    return replay_id


async def list_replays(request: web.Request) -> web.Response:
    from signaling.http_api import ok, optional_session
    session = await optional_session(request)
    services = request.app[REPLAYS].services
    account = await services.accounts.find(request.match_info["username"])
    replays = await request.app[REPLAYS].listed(account.id, session.user_id if session else None)
    return ok(user=account.public(), replays=[r.as_dict() for r in replays])


async def _watchable(request: web.Request) -> tuple[LiveReplays, Replay, str | None]:
    from signaling.http_api import optional_session
    session = await optional_session(request)
    feature = request.app[REPLAYS]
    replay = await feature.store.get(_replay_id(request))
    user_id = session.user_id if session else None
    await feature.check_may_watch(replay, user_id)
    return feature, replay, user_id


async def get_replay(request: web.Request) -> web.Response:
    from signaling.http_api import ok
    feature, replay, _ = await _watchable(request)
    creator = await feature.services.accounts.get(replay.creator_id)
    chat = await asyncio.to_thread(feature.chat_of, replay)
    return ok(replay=replay.as_dict(), creator=creator.public(), chat=chat)


async def delete_replay(request: web.Request) -> web.Response:
    from signaling.http_api import ok, signed_in
    session = await signed_in(request)
    feature = request.app[REPLAYS]
    replay = await feature.store.get(_replay_id(request))
    if replay.creator_id != session.user_id:
        raise forbidden("only its creator deletes a replay")
    await feature.delete(replay)
    log.info("replay deleted", extra={"fields": {"replay": replay.replay_id}})
    return ok()


async def replay_video(request: web.Request) -> web.StreamResponse:
    """The replay's file; Range requests answered by FileResponse (206 with the part).
    Refusals are the JSON errors the API answers."""
    from signaling.http_api import error_response
    try:
        feature, replay, _ = await _watchable(request)
    except DomainError as refusal:
        return error_response(refusal)
    path = feature.video_path(replay)
    if not path.is_file():
        return error_response(not_found("this replay's file is gone"))
    return web.FileResponse(path, headers={
        "Content-Type": MEDIA_TYPES.get(replay.file, "application/octet-stream"),
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})


async def replay_thumbnail(request: web.Request) -> web.StreamResponse:
    """The replay's thumbnail (a JPEG of a keyframe ~1 s in), for whoever may watch it."""
    from signaling.http_api import error_response
    try:
        _, replay, _ = await _watchable(request)
    except DomainError as refusal:
        return error_response(refusal)
    path = replay_dir(request.app[REPLAYS].settings.data_dir, replay.replay_id) / THUMB_FILE
    if not replay.thumbnail or not path.is_file():
        return error_response(not_found("this replay has no thumbnail"))
    return web.FileResponse(path, headers={
        "Content-Type": "image/jpeg", "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff"})


def setup(app: web.Application, feature: LiveReplays) -> None:
    """The replay routes (the page itself is signaling/web_pages.py's)."""
    app[REPLAYS] = feature
    app.router.add_get("/api/users/{username}/replays", list_replays)
    app.router.add_get("/api/replays/{replay_id}", get_replay)
    app.router.add_delete("/api/replays/{replay_id}", delete_replay)
    app.router.add_get("/replays/{replay_id}/video", replay_video)
    app.router.add_get("/replays/{replay_id}/thumb.jpg", replay_thumbnail)
