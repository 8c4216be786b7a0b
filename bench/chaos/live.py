"""A creator on air for a chaos run: a golive client on its home node with a synthetic
headless stream (a small, slow test pattern: the run measures no video). When its node
is killed it connects again there and resumes the same live (`live:start {resume_of}`),
as the studio does; the live itself stays current in Redis meanwhile (the nodes run with
a grace longer than the run), so gifts and chat go on.
"""

from __future__ import annotations

import contextlib

from bench.creator import start_live
from bench.target import Account
from golive.client import GoliveClient
from golive.errors import LiveRefused
from media.synthetic import HeadlessCreator

SIZE, FPS = (160, 96), 5.0
START_TIMEOUT_S = 20.0


class LiveCreator:
    """Owns its client and its media peer; close() ends the live and both."""

    def __init__(self, account: Account, home_url: str, title: str) -> None:
        self.account = account
        self.title = title
        self.live_id: str | None = None
        self.resumed = 0
        self.resume_refusals: list[str] = []
        self.media: HeadlessCreator | None = None
        self.client = GoliveClient([home_url], token=account.token, reconnect_delay=0.0,
                                   name=f"creator-{account.username}")
        self.client.on_connected(self._on_air)

    async def start(self) -> str:
        await self.client.connect()
        assert self.live_id is not None
        return self.live_id

    async def _on_air(self, client: GoliveClient) -> None:
        if self.media is not None:
            await self.media.close()
        self.media = HeadlessCreator.synthetic(*SIZE, FPS)
        try:
            live = await start_live(client, self.media, self.title, START_TIMEOUT_S,
                                    resume_of=self.live_id)
        except LiveRefused as exc:
            if self.live_id is not None:  # noted; the live stays current for the grace
                self.resume_refusals.append(str(exc.error))
                return
            raise
        if self.live_id is not None:
            self.resumed += 1
        self.live_id = live["live_id"]

    async def close(self) -> None:
        if self.client.connected:
            with contextlib.suppress(Exception):
                await self.client.end_live()
        await self.client.close()
        if self.media is not None:
            await self.media.close()


__all__ = ["LiveCreator"]
