"""A chat bot: it joins a creator's LIVE, greets each viewer who joins and answers "!coins"
with the coins sent in gifts during this LIVE; it stops when the LIVE ends.

    python docs/examples/chat_bot.py --url http://127.0.0.1:8080 \
        --user mybot --password 'its password' --creator ann
"""

from __future__ import annotations

import argparse
import asyncio

from golive.client import GoliveClient, LiveChat
from golive.errors import GoliveError
from golive.pushes import ChatMessages, LiveEnded


async def say(room: LiveChat, text: str) -> None:
    """Send a line; refused for the chat's rate (5 lines in 5 s), wait and send it again
    (a refusal stores nothing, so nothing is written twice)."""
    while True:
        try:
            await room.send(text)
            return
        except GoliveError as exc:
            if exc.code != "rate_limited":
                raise
            await asyncio.sleep(exc.retry_after or 1.0)


async def run_bot(url: str, username: str, password: str, creator: str,
                  ready: asyncio.Event | None = None) -> None:
    async with GoliveClient(url) as client:
        me = await client.sign_in(username, password)
        profile = await client.profile(creator)
        pushes = client.pushes(ChatMessages.event, LiveEnded.event)
        room = await client.join_live(profile["user"]["id"])
        if ready is not None:
            ready.set()
        async for push in pushes:
            if isinstance(push, LiveEnded):
                return
            assert isinstance(push, ChatMessages)
            for item in push.items:  # each line once, in order, even across reconnects
                if item.user is None or item.user.id == me.user.id:
                    continue
                if item.kind == "system" and item.event == "joined":
                    await say(room, f"Welcome, {item.user.display_name}!")
                elif item.kind == "message" and item.text.strip() == "!coins":
                    board = await room.board()
                    await say(room, f"{board['coins']} coins in gifts this LIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--creator", required=True, help="the creator's username")
    args = parser.parse_args()
    asyncio.run(run_bot(args.url, args.user, args.password, args.creator))


if __name__ == "__main__":
    main()
