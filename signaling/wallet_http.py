"""The wallet's HTTP API: the catalog, buying coins, the payment webhook, balances,
history and cash-outs (engine/ledger.py, engine/payments.py do the work).

GET  /api/gifts               the gift catalog and the rate in force (anyone)
GET  /api/coins/packages      coin packages; whether the test provider is on (anyone)
POST /api/coins/checkout      buy a package with the test provider (signed in, 18+)
POST /api/payments/webhook    a provider's signed event (no session: the signature)
GET  /api/wallet              balances, cash-out limits, recent payouts (signed in)
GET  /api/wallet/history      journal entries, newest first, ?before=<id>&limit=<n>
POST /api/wallet/cashout      move diamonds to pending and hand them to the provider
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from engine.errors import DomainError
from engine.ledger import JournalEntry
from engine.payments import SIGNATURE_HEADER
from signaling.appkeys import SERVICES, SETTINGS
from signaling.http_api import body, ok, query_int, query_stream_id, signed_in
from signaling.schemas import CashoutRequest, CoinCheckout
from signaling.services import Services

log = logging.getLogger("golive.wallet")

HISTORY_MAX = 50


def services_of(request: web.Request) -> Services:
    return request.app[SERVICES]


async def gifts(request: web.Request) -> web.Response:
    ledger = services_of(request).ledger
    rules = ledger.rules
    return ok(gifts=[g.as_dict() for g in ledger.catalog.gifts()],
              rate={"coins_per_diamond": rules.coins_per_diamond,
                    "commission_pct": rules.commission_pct},
              max_count=rules.max_count,
              confirm_above=request.app[SETTINGS].gift_confirm_coins)


async def packages(request: web.Request) -> web.Response:
    services = services_of(request)
    return ok(packages=[p.as_dict() for p in services.ledger.catalog.packages()],
              test_provider=services.payments.test_provider)


async def checkout(request: web.Request) -> web.Response:
    session = await signed_in(request)
    p = await body(request, CoinCheckout)
    services = services_of(request)
    # test_checkout asks Payments.check_buyer (18+), as the webhook does
    purchase = await services.payments.test_checkout(
        user_id=session.user_id, package_id=p.package_id, checkout_id=p.checkout_id)
    log.info("coins bought", extra={"fields": {"user": session.user_id, "coins": purchase.coins,
                                               "replayed": purchase.replayed}})
    return ok(purchase=purchase.as_dict(),
              balances=(await services.ledger.balances(session.user_id)).as_dict())


async def webhook(request: web.Request) -> web.Response:
    raw = await request.read()
    result = await services_of(request).payments.webhook(
        raw, request.headers.get(SIGNATURE_HEADER))
    if "refused" in result:
        # the provider is told to refund: the operator should see every one
        log.warning("payment refused", extra={"fields": {
            "payment": result["payment_id"], "reason": result.get("reason"),
            "replayed": result["replayed"]}})
    else:
        log.info("payment webhook", extra={"fields": {"applied": result.get("applied")}})
    return ok(**result)


async def wallet(request: web.Request) -> web.Response:
    session = await signed_in(request)
    ledger = services_of(request).ledger
    rules = ledger.rules
    return ok(balances=(await ledger.balances(session.user_id)).as_dict(),
              cashout={"min": rules.cashout_min, "daily_cap": rules.cashout_daily_cap},
              payouts=[p.as_dict() for p in await ledger.payouts(session.user_id, limit=10)],
              rate={"coins_per_diamond": rules.coins_per_diamond,
                    "commission_pct": rules.commission_pct})


async def history(request: web.Request) -> web.Response:
    session = await signed_in(request)
    services = services_of(request)
    limit = query_int(request, "limit", default=20, low=1, high=HISTORY_MAX)
    entries = await services.ledger.history(session.user_id,
                                            before=query_stream_id(request, "before"),
                                            limit=limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    others = {e.meta.get("creator") if e.meta.get("sender") == session.user_id
              else e.meta.get("sender") for e in entries if e.kind == "gift"}
    people = await services.accounts.get_many(sorted(o for o in others if o))
    items = [_history_item(services, e, session.user_id, people) for e in entries]
    return ok(items=items, more=more)


def _history_item(services: Services, entry: JournalEntry, user_id: str,
                  people: dict[str, Any]) -> dict[str, Any]:
    item = entry.as_dict(user_id)
    meta = entry.meta
    view: dict[str, Any] = {"id": item["id"], "at": item["at"], "kind": entry.kind,
                            "changes": item["changes"]}
    if entry.kind == "gift":
        sent = meta.get("sender") == user_id
        view["direction"] = "sent" if sent else "received"
        try:
            gift = services.ledger.catalog.gift(meta.get("gift", ""))
            view["gift"] = {"id": gift.id, "name": gift.name, "icon": gift.icon}
        except DomainError:  # a gift since removed from the catalog: keep its id
            view["gift"] = {"id": meta.get("gift", ""), "name": meta.get("gift", ""),
                            "icon": ""}
        view["count"] = int(meta.get("count", "1"))
        other = people.get(meta.get("creator" if sent else "sender", ""))
        view["with"] = ({"username": other.username, "display_name": other.display_name}
                        if other else None)
    elif entry.kind == "purchase":
        view["package"] = meta.get("package", "")
        view["provider"] = meta.get("provider", "")
    else:
        view["payout_id"] = meta.get("payout", "")
    return view


async def cashout(request: web.Request) -> web.Response:
    session = await signed_in(request)
    p = await body(request, CashoutRequest)
    services = services_of(request)
    payout = await services.ledger.request_cashout(request_id=p.request_id,
                                                   user_id=session.user_id,
                                                   diamonds=p.diamonds)
    payout = await services.payments.start_payout(payout)
    log.info("cash-out", extra={"fields": {"user": session.user_id, "diamonds": p.diamonds,
                                           "status": payout.status}})
    return ok(payout=payout.as_dict(),
              balances=(await services.ledger.balances(session.user_id)).as_dict())


def setup(app: web.Application) -> None:
    app.router.add_get("/api/gifts", gifts)
    app.router.add_get("/api/coins/packages", packages)
    app.router.add_post("/api/coins/checkout", checkout)
    app.router.add_post("/api/payments/webhook", webhook)
    app.router.add_get("/api/wallet", wallet)
    app.router.add_get("/api/wallet/history", history)
    app.router.add_post("/api/wallet/cashout", cashout)
