"""golive.client against real `golive serve` processes: every method, the typed pushes, a
typed error with the server's code, and a reconnect after a node is killed (SIGKILL)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import signal
import sys
from typing import Any

import aiohttp
import pytest

from golive.client import GoliveClient, Receipt
from golive.errors import GoliveError, NotSent
from golive.lean import LeanSocket
from golive.pushes import (
    ChatMessages,
    DmMessage,
    GiftReceived,
    LiveEnded,
    LiveLeft,
    LiveStarted,
    NotifyNew,
    NudgeWaiting,
    Push,
    RawPush,
    Reconnected,
    RoomLeft,
    RoomState,
    decode,
)
from media.synthetic import HeadlessCreator
from tests.support.cluster import NODE_ENV
from tests.support.poll import poll
from tests.support.servers import REPO, ServerProcess

PASSWORD = "correct-horse-1"


async def next_push(stream: Any, kind: type[Push], timeout: float = 10.0) -> Any:
    """The next push of `kind` (others are skipped)."""
    async with asyncio.timeout(timeout):
        async for push in stream:
            if isinstance(push, kind):
                return push
    raise AssertionError(f"the stream ended before a {kind.__name__}")


async def test_sign_up_follow_dm_and_their_pushes(live_server: ServerProcess) -> None:
    async with GoliveClient(live_server.url) as ann, GoliveClient(live_server.url) as bob:
        await ann.sign_up("ann", PASSWORD)
        bob_session = await bob.sign_up("bob", PASSWORD, display_name="Bob B")
        assert bob_session.user.display_name == "Bob B" and bob_session.token
        assert (await bob.whoami()).id == bob_session.user.id  # the socket is bob's
        pushes = bob.pushes()
        relation = await ann.follow("bob")
        assert relation["relation"]["following"] is True
        notified = await next_push(pushes, NotifyNew)
        assert notified.notification.kind == "follow" and notified.unread >= 1
        sent = await ann.dm_send(bob_session.user.id, "hi bob")
        message = await next_push(pushes, DmMessage)
        assert (message.message.text, message.message.sender) == ("hi bob", ann.user.id)
        history = await bob.dm_history(sent["conversation_id"])
        assert [m["text"] for m in history["messages"]] == ["hi bob"]
        assert (await ann.unfollow("bob"))["relation"]["following"] is False
        assert (await ann.me())["user"]["username"] == "ann"
        # a second client signs in with the password
        async with GoliveClient(live_server.url) as again:
            assert (await again.sign_in("bob", PASSWORD)).user.id == bob_session.user.id
            await again.sign_out()
            with pytest.raises(GoliveError) as refused:
                await again.request("GET", "/api/me")
            assert refused.value.code == "unauthorized"
        pushes.close()
        await bob.dm_send(ann.user.id, "after the close")  # type: ignore[union-attr]
        leftover = [p async for p in pushes]  # closed: what was queued, then the end
        assert not [p for p in leftover if isinstance(p, DmMessage)], leftover


async def test_errors_carry_the_servers_stable_code(live_server: ServerProcess) -> None:
    async with GoliveClient(live_server.url) as ann:
        with pytest.raises(GoliveError) as wrong:
            await ann.sign_in("nobody", "wrong-password-1")
        assert (wrong.value.code, wrong.value.reason) == ("unauthorized", "credentials")
        await ann.sign_up("ann", PASSWORD)
        async with GoliveClient(live_server.url) as other:
            with pytest.raises(GoliveError) as taken:
                await other.sign_up("ANN", PASSWORD)
        assert taken.value.code == "conflict"
        with pytest.raises(GoliveError) as yourself:
            await ann.nudge(ann.user.id)  # type: ignore[union-attr]
        assert yourself.value.code == "invalid" and not yourself.value.retryable
        with pytest.raises(GoliveError) as offline:
            await ann.send_gift("ann", "rose")
        assert offline.value.code == "not_found"  # not live
        with pytest.raises(GoliveError) as unknown:
            await ann.join_live("0123456789abcdef")
        assert unknown.value.code == "not_found"
    bad = GoliveClient(live_server.url, token="not-a-token", reconnect=False)
    try:
        with pytest.raises(GoliveError) as refused:
            await bad.connect(timeout=10)
        assert refused.value.code == "unauthorized"
    finally:
        await bad.close()
    with pytest.raises(NotSent):
        await bad.ack("session:whoami")  # closed: nothing is sent


async def test_nudge_live_chat_gifts_and_the_end(live_server: ServerProcess) -> None:
    async with GoliveClient(live_server.url) as cat, GoliveClient(live_server.url) as dan:
        creator = await cat.sign_up("cat", PASSWORD)
        await dan.sign_up("dan", PASSWORD)
        cat_pushes = cat.pushes()
        nudged = await dan.nudge(creator.user.id)
        assert nudged["nudged"] is True
        assert (await next_push(cat_pushes, NudgeWaiting)).waiting == 1
        bought = await dan.buy_coins("coins_70", checkout_id="checkout-dan-1")
        again = await dan.buy_coins("coins_70", checkout_id="checkout-dan-1")
        assert (bought.coins, bought.replayed, again.replayed) == (70, False, True)
        assert (await dan.balance()).coins == 70  # bought once
        catalog = {g["id"]: g for g in await dan.gift_catalog()}

        media = HeadlessCreator.synthetic(160, 96, 10)
        try:
            live = await cat.go_live(media, "client test")
            assert live.creator_id == creator.user.id
            dan_pushes = dan.pushes()
            room = await dan.join_live(creator.user.id)
            assert room.live_id == live.live_id
            line = await room.send("hello from dan")
            while line.id not in [i.id for i in (await next_push(dan_pushes, ChatMessages)).items]:
                pass  # the joined line comes first
            assert room.chat.texts() == ["hello from dan"]
            receipt = await dan.send_gift("cat", "rose", 2, transfer_id="gift-dan-0001")
            resent = await dan.send_gift(creator.user.id, "rose", 2, transfer_id="gift-dan-0001")
            assert isinstance(receipt, Receipt)
            assert (receipt.coins, receipt.replayed, resent.replayed) == (
                2 * catalog["rose"]["coins"], False, True)
            assert (await dan.balance()).coins == 70 - receipt.coins  # moved once
            gift = await next_push(cat_pushes, GiftReceived)
            assert (gift.transfer_id, gift.sender.username, gift.count) == (
                "gift-dan-0001", "dan", 2)
            assert (await room.board())["coins"] == receipt.coins
            with pytest.raises(GoliveError) as conflict:
                await dan.send_gift("cat", "rose", 3, transfer_id="gift-dan-0001")
            assert conflict.value.code == "conflict"
            await cat.end_live()
            ended = await next_push(dan_pushes, LiveEnded)
            assert (ended.live_id, ended.reason) == (live.live_id, "ended_by_creator")
        finally:
            await media.close()


async def test_a_killed_node_reconnects_rejoins_and_catches_the_chat_up(
        server_factory: Any, redis_url: str, redis: Any) -> None:
    env = {**NODE_ENV, "GOLIVE_LIVE_GRACE": "30"}
    a = server_factory(redis_url=redis_url, env=env)
    b = server_factory(redis_url=redis_url, env=env)
    async with GoliveClient(b.url) as cat, GoliveClient([a.url, b.url]) as dan:
        creator = await cat.sign_up("cat", PASSWORD)
        await dan.sign_up("dan", PASSWORD)
        media = HeadlessCreator.synthetic(160, 96, 10)
        try:
            await cat.go_live(media, "on b")
            pushes = dan.pushes(ChatMessages.event, Reconnected.event)
            room = await dan.join_live(creator.user.id)  # on a: its chat, b's live
            assert dan.url == a.url
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=10)
            texts = []
            for n in range(5):
                reply = await cat.call("chat:send", {"live_id": room.live_id,
                                                     "text": f"while away {n}"})
                texts.append(reply["message"]["text"])
            back, pushed = None, []  # what the pushes said: the lines, each once
            async with asyncio.timeout(30):
                async for push in pushes:
                    if isinstance(push, Reconnected):
                        back = push
                    else:
                        pushed += [i.text for i in push.items if i.kind == "message"]
                    if back is not None and set(texts) <= set(pushed):
                        break
            assert back is not None and back.url == b.url and dan.reconnects == 1
            assert sorted(pushed) == sorted(texts), pushed
            await poll(lambda: room.chat.texts()[-5:] == texts, what="caught up")
            # each shown once: a line both caught up and pushed (b's feed) is dropped again
            assert all(room.chat.texts().count(t) == 1 for t in texts)
            line = await room.send("back on b")
            await poll(lambda: room.chat.texts()[-1] == "back on b", what="the push")
            assert line.text == "back on b"
        finally:
            await media.close()


EXAMPLES = REPO / "docs" / "examples"


def example(name: str) -> Any:
    """A module of docs/examples/, loaded from its file (docs/client.md shows it whole)."""
    spec = importlib.util.spec_from_file_location(f"golive_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_show_each_example_whole() -> None:
    doc = (REPO / "docs" / "client.md").read_text()
    for path in sorted(EXAMPLES.glob("*.py")):
        assert f"```python\n{path.read_text()}```" in doc, f"docs/client.md lacks {path.name}"


async def test_the_docs_examples_run(live_server: ServerProcess) -> None:
    chat_bot, gift_sender = example("chat_bot"), example("gift_sender")
    async with GoliveClient(live_server.url) as cat, GoliveClient(live_server.url) as dan, \
            GoliveClient(live_server.url) as bot:
        creator = await cat.sign_up("cat", PASSWORD)
        await dan.sign_up("dan", PASSWORD, display_name="Dan")
        await bot.sign_up("bot", PASSWORD, connect=False)
        media = HeadlessCreator.synthetic(160, 96, 10)
        ready = asyncio.Event()
        running = None
        try:
            await cat.go_live(media, "with a bot")
            running = asyncio.create_task(chat_bot.run_bot(
                live_server.url, "bot", PASSWORD, "cat", ready))
            await asyncio.wait_for(ready.wait(), 20)
            room = await dan.join_live(creator.user.id)
            await poll(lambda: "Welcome, Dan!" in room.chat.texts(), what="the greeting")
            receipt = await gift_sender.send_gift(live_server.url, "dan", PASSWORD, "cat",
                                                  "rose", 3)
            assert (receipt.count, receipt.replayed) == (3, False)
            await room.send("!coins")
            await poll(lambda: f"{receipt.coins} coins in gifts this LIVE" in room.chat.texts(),
                       what="the bot's answer")
            await cat.end_live()
            await asyncio.wait_for(running, 20)  # the bot stops when the LIVE ends
        finally:
            if running is not None and not running.done():
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            await media.close()


async def test_golive_broadcast_goes_live_through_the_client(live_server: ServerProcess) -> None:
    async with GoliveClient(live_server.url) as eve, GoliveClient(live_server.url) as fay:
        creator = await eve.sign_up("eve", PASSWORD, connect=False)
        await fay.sign_up("fay", PASSWORD)
        pushes = fay.pushes(LiveStarted.event, LiveEnded.event)
        await fay.call("live:watch", {"user_id": creator.user.id})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "signaling.cli", "broadcast", "--url", live_server.url,
            "--user", "eve", "--password", PASSWORD, "--size", "160x96", "--fps", "10",
            "--title", "headless", "--duration", "3", "--record", cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            started = await next_push(pushes, LiveStarted, timeout=30)
            assert (started.live.title, started.creator.username) == ("headless", "eve")
            ended = await next_push(pushes, LiveEnded, timeout=30)
            assert ended.reason == "ended_by_creator"
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, out
        assert f"LIVE: {live_server.url}/@eve" in out.decode(), out
        # --record: the LIVE is on eve's profile as a replay once its file is closed
        replays = await poll(lambda: replays_of(eve, "eve"), timeout=30, what="eve's replay")
        assert replays[0]["replay_id"] == started.live.live_id  # one recording per live


async def replays_of(client: GoliveClient, username: str) -> list[dict[str, Any]]:
    return list((await client.request("GET", f"/api/users/{username}/replays"))["replays"])


async def test_anonymous_and_lean_sockets(live_server: ServerProcess) -> None:
    async with GoliveClient(live_server.url) as gus, \
            GoliveClient(live_server.url, anonymous=True) as visitor:
        creator = await gus.sign_up("gus", PASSWORD)
        watched = await visitor.call("live:watch", {"user_id": creator.user.id})
        assert watched["live"] is None  # signed out may watch and read
        with pytest.raises(GoliveError) as refused:
            await visitor.nudge(creator.user.id)
        assert (refused.value.code, refused.value.reason) == ("unauthorized", "anonymous")
        async with aiohttp.ClientSession() as http:
            lean = LeanSocket(http, live_server.url, creator.token)
            try:
                await lean.connect()
                assert (await lean.call("session:whoami", {}))["user"]["id"] == creator.user.id
            finally:
                await lean.close()
            bad = LeanSocket(http, live_server.url, "not-a-token")
            try:
                with pytest.raises(GoliveError) as wrong:
                    await bad.connect()
                assert wrong.value.code == "unauthorized"
            finally:
                await bad.close()


def test_live_ended_and_room_left_decode_as_documented_and_share_live_left() -> None:
    """docs/protocol.md: `live:ended {live_id, creator_id, reason}` and `room:left {live_id,
    reason}`; one Struct (LiveLeft) holds what they share, so one isinstance catches both."""
    ended = decode("live:ended", {"live_id": "L1", "creator_id": "C1",
                                  "reason": "node_lost", "later": 1})
    assert ended == LiveEnded(live_id="L1", creator_id="C1", reason="node_lost")
    left = decode("room:left", {"live_id": "L1", "reason": "silent"})
    assert left == RoomLeft(live_id="L1", reason="silent")
    assert isinstance(ended, LiveLeft) and isinstance(left, LiveLeft)
    assert (ended.event, left.event) == ("live:ended", "room:left")
    assert decode("room:left", {"live_id": "L1"}) == RoomLeft(live_id="L1", reason="")
    assert decode("room:left", {"reason": "silent"}) == RawPush(
        name="room:left", data={"reason": "silent"})  # no live_id: not the documented shape
    assert decode("live:left", {"live_id": "L1"}) == RawPush(
        name="live:left", data={"live_id": "L1"})  # the shared Struct is no event of its own


async def test_closing_a_client_leaves_its_lives_at_once(server_factory: Any, redis_url: str,
                                                         redis: Any) -> None:
    """python-socketio closes the websocket before its goodbye, which the server reads as
    a lost network and would hold for a resume: the client leaves its lives first. The
    hold is an hour here, so a count back at 0 can only come from the leave."""
    server = server_factory(redis_url=redis_url, env={"GOLIVE_VIEWER_RESUME_GRACE": "3600"})
    async with GoliveClient(server.url) as cat:
        creator = await cat.sign_up("cat", PASSWORD)
        media = HeadlessCreator.synthetic(160, 96, 10)
        try:
            await cat.go_live(media, "leave at close")
            cat_pushes = cat.pushes()
            eve = GoliveClient(server.url)
            try:
                await eve.sign_up("eve", PASSWORD)
                await eve.join_live(creator.user.id)
                while (await next_push(cat_pushes, RoomState)).viewers != 1:
                    pass
            finally:
                await eve.close()
            while (await next_push(cat_pushes, RoomState, timeout=30)).viewers != 0:
                pass
        finally:
            await media.close()
