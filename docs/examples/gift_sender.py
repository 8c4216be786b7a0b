"""Send a gift to a creator who is LIVE, once: the client makes a transfer id and sends it
again unchanged after a timeout or a dropped connection, and the server moves the coins
once per id. Coins are bought first when the balance is short (18+; the prices are the
server's catalog, never the client's).

    python docs/examples/gift_sender.py --url http://127.0.0.1:8080 \
        --user dan --password 'his password' --creator ann --gift rose --count 3
"""

from __future__ import annotations

import argparse
import asyncio

from golive.client import GoliveClient, Receipt
from golive.errors import GoliveError


async def send_gift(url: str, username: str, password: str, creator: str, gift_id: str,
                    count: int = 1) -> Receipt:
    async with GoliveClient(url) as client:
        await client.sign_in(username, password)
        prices = {gift["id"]: gift["coins"] for gift in await client.gift_catalog()}
        need = prices[gift_id] * count
        balance = await client.balance()
        if balance.coins < need:
            packages = await client.coin_packages()
            enough = [p for p in packages if p["coins"] >= need - balance.coins] or packages
            await client.buy_coins(min(enough, key=lambda p: p["coins"])["id"])
        try:
            return await client.send_gift(creator, gift_id, count)
        except GoliveError as exc:  # the server's stable code says why
            if exc.code == "not_found":
                raise SystemExit(f"{creator} is not LIVE") from None
            raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--creator", required=True, help="the creator's username")
    parser.add_argument("--gift", default="rose")
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args()
    receipt = asyncio.run(send_gift(args.url, args.user, args.password, args.creator,
                                    args.gift, args.count))
    print(f"sent: {receipt.count} x {receipt.gift_id} for {receipt.coins} coins "
          f"({receipt.sender_coins} left; transfer {receipt.transfer_id})")


if __name__ == "__main__":
    main()
