"""The authorization matrix: every Socket.IO event and every HTTP route x every kind of
caller, and the stable code each must get (engine/errors.py).

One world is set up once (tests/test_authorization.py builds it) and every row is tried
by every principal against it:

  anonymous      a signed-out visitor: an anonymous socket ({anonymous: true}), no token
                 on HTTP; it joined the creator's live (chat-only)
  signed_out     a token whose session was signed out (POST /api/signout): its socket is
                 refused at connect, so every event is `unauthorized`; HTTP sends it
  viewer         an adult who follows the creator and joined the live (chat-only)
  banned         joined, then banned from the creator's lives (chat:ban)
  blocked        joined, then blocked by the creator (user:block)
  minor          17 years old (under GOLIVE_LIVE_MIN_AGE and the 18+ gift and purchase
                 rules, over the 16+ of direct messages); follows and joined
  creator        owner of the live and of what the payloads name (a second tab: the
                 publishing one stays up)
  other_creator  an adult live on their own (a second tab too); follows and joined

Payload and path values are templates filled from the world ("{live_id}",
"{creator_id}", ...; "{uniq}" is a fresh id in every cell). Rows run in table order,
principals in PRINCIPALS order: rows that change the world (blocks, follows, leaving,
ending the live) come after the rows that read it, and each undoes what it did where
later rows depend on it (user:block then user:unblock).

Codes in EXPECT strings, one per principal: ok, U unauthorized, F forbidden, N not_found,
I invalid, C conflict, $ insufficient_funds, X unavailable.

`markdown()` renders the table for docs/security.md ("## Authorization"); a test keeps
the document equal to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRINCIPALS = ("anonymous", "signed_out", "viewer", "banned", "blocked", "minor", "creator",
              "other_creator")
HEADINGS = ("anonymous", "signed-out token", "viewer", "banned viewer", "blocked user",
            "minor (17)", "the creator", "another creator")

CODES = {"ok": "ok", "U": "unauthorized", "F": "forbidden", "N": "not_found",
         "I": "invalid", "C": "conflict", "$": "insufficient_funds", "X": "unavailable",
         "R": "rate_limited"}


@dataclass(frozen=True)
class Row:
    """One event or route, the payload every principal sends, the code each must get.

    `name`: the event ("chat:send") or the route ("POST /api/users/{username}/follow",
    as aiohttp's router names it); `label` tells two rows of one event apart. `path`:
    the concrete path of a route (a template). `covers`: other routes this row stands
    for (the Socket.IO endpoint's methods). `fresh_token`: each principal sends a new
    token of their own (signing out must not end the sockets the walk uses)."""

    name: str
    payload: Any
    expect: tuple[str, ...]
    label: str = ""
    path: str = ""
    covers: tuple[str, ...] = ()
    fresh_token: bool = False
    raw: bool = False          # payload names the world value sent as the raw body
    content_type: str = ""     # the raw body's Content-Type (application/sdp for WHIP)
    # An ack field holding the refusal the caller would get ({code, ...} or None): its
    # code stands for the outcome (gift:status says what gift:send would answer).
    verdict: str = ""
    why: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.name} ({self.label})" if self.label else self.name

    @property
    def is_route(self) -> bool:
        return " " in self.name

    def expected(self, principal: str) -> str:
        return self.expect[PRINCIPALS.index(principal)]


def row(name: str, payload: Any, expect: str, **kw: Any) -> Row:
    codes = tuple(CODES[c] for c in expect.split())
    if len(codes) != len(PRINCIPALS):
        raise ValueError(f"{name}: {len(codes)} codes for {len(PRINCIPALS)} principals")
    return Row(name, payload, codes, **kw)


LIVE = {"live_id": "{live_id}"}
CREATOR = {"user_id": "{creator_id}"}
CONV = {"conversation_id": "{conv_id}"}
MODERATE = {"user_id": "{troll_id}", "creator_id": "{creator_id}"}

#                                                                  an ou vi ba bl mi cr ot
SOCKET_ROWS = [
    row("session:whoami", {},                                     "U  U  ok ok ok ok ok ok"),
    row("profile:get", {"username": "{creator_name}"},            "U  U  ok ok ok ok ok ok"),
    row("profile:update", {"bio": "authz"},                       "U  U  ok ok ok ok ok ok"),
    row("profile:update", {"bio": "authz", "birthdate": "1990-01-01"}, "U  U  I  I  I  I  I  I",
        label="a birthdate sent along", why="an age is never the client's to say"),
    row("user:search", {"q": "{creator_name}"},                   "U  U  ok ok ok ok ok ok"),
    row("user:suggest", {},                                       "U  U  ok ok ok ok ok ok"),
    row("user:list", {**CREATOR, "kind": "followers"},            "U  U  ok ok ok ok ok ok"),
    row("live:watch", CREATOR,                                    "ok U  ok ok F  ok ok ok"),
    row("discover:watch", {},                                     "ok U  ok ok ok ok ok ok"),
    row("room:join", {**CREATOR, "media": False},                 "ok U  ok F  F  ok I  ok",
        why="the creator watches from the studio"),
    row("rtc:config", {},                                         "U  U  ok ok ok ok ok ok",
        why="a fresh TURN credential for signed-in users; a visitor's comes with its join"),
    row("rtc:answer", {**LIVE, "sdp": "v=0"},                     "N  U  N  N  N  N  N  N",
        why="chat-only joins have no peer connection to answer"),
    row("rtc:restart", LIVE,                                      "N  U  N  N  N  N  N  N",
        why="an ICE restart is of the caller's own peer connection: chat-only joins have none"),
    row("room:resume", {**LIVE, "token": "{uniq}{uniq}"},          "N  U  N  N  N  N  N  N",
        why="a token only the dropped socket's page holds; an unknown one is not_found"),
    row("room:quality", {**LIVE, "quality": "auto"},              "N  U  N  N  N  N  N  N",
        why="chat-only joins have no stream to pick a quality of"),
    row("room:viewers", LIVE,                                     "ok U  ok F  F  ok ok ok"),
    row("live:title", {"title": "renamed"},                       "U  U  N  N  N  N  ok ok"),
    row("live:start", {"offer": "v=0"},                           "U  U  I  I  I  F  C  C",
        why="adults get as far as the media (a bad offer); the creators are live already"),
    row("live:start", {"offer": "v=0", "resume_of": "{live_id}"}, "U  U  N  N  N  F  C  N",
        label="resume the creator's live",
        why="a resume is of the caller's own live: anyone else's id is not_found"),
    row("live:restart", {"offer": "v=0"},                         "U  U  N  N  N  N  I  I",
        why="an ICE restart of the caller's own live (a bad offer here); others are not live"),
    row("chat:history", LIVE,                                     "ok U  ok F  F  ok ok ok",
        why="members only: a ban or a block (either way) removes a member"),
    row("chat:send", {**LIVE, "text": "hello"},                   "U  U  ok F  F  ok ok ok"),
    row("chat:delete", {**LIVE, "message_id": "{line2_id}"},      "U  U  F  F  F  F  ok F",
        why="a line of another viewer: the creator and their moderators only"),
    row("chat:delete", {**LIVE, "message_id": "{other_line_id}"}, "U  U  F  F  F  F  N  F",
        label="a line of the other creator's live",
        why="ids are looked up in the live named: another live's line is not there"),
    row("chat:mute", {**MODERATE, "seconds": 60},                 "U  U  F  F  F  F  ok F"),
    row("chat:unmute", MODERATE,                                  "U  U  F  F  F  F  ok F"),
    row("chat:ban", MODERATE,                                     "U  U  F  F  F  F  ok F"),
    row("chat:unban", MODERATE,                                   "U  U  F  F  F  F  ok F"),
    row("chat:restricted", {"creator_id": "{creator_id}"},        "U  U  F  F  F  F  ok F"),
    row("chat:moderators", {"creator_id": "{creator_id}"},        "U  U  F  F  F  F  ok F"),
    row("chat:moderator", {"user_id": "{troll_id}", "on": False}, "U  U  ok ok ok ok ok ok",
        why="always the caller's own chat: the payload cannot name another creator"),
    row("chat:settings", {"slow_mode": 0},                        "U  U  ok ok ok ok ok ok",
        why="always the caller's own chat"),
    row("live:like", {**LIVE, "count": 1},                        "U  U  ok F  F  ok F  ok",
        why="members only, not the creator"),
    row("gift:status", {"creator": "{creator_name}"},             "U  U  ok F  F  F  I  ok",
        verdict="refusal", why="the code gift:send would get (its `refusal`)"),
    row("gift:status", {"creator": "{minor_name}"},               "U  U  F  F  F  I  F  F",
        label="the minor", verdict="refusal", why="under 18 receives no gifts"),
    row("gift:board", LIVE,                                       "ok U  ok F  F  ok ok ok"),
    row("gift:send", {"transfer_id": "{uniq}", "creator": "{creator_name}",
                      "gift_id": "rose"},                         "U  U  ok F  F  F  I  ok",
        why="18+ to send (and receive); nobody gifts themselves"),
    row("gift:send", {"transfer_id": "{uniq}", "creator": "{creator_name}",
                      "gift_id": "rose", "coins": 0},             "U  U  I  I  I  I  I  I",
        label="a price sent along", why="the catalog prices a gift: no such field"),
    row("dm:send", {"to": "{creator_id}", "text": "hello"},       "U  U  ok ok F  ok I  ok",
        why="a block stops messages both ways; DMs are 16+"),
    row("dm:send", {"to": "{troll_id}", "share": {"kind": "live", "user_id": "{creator_id}"}},
        "U  U  ok ok F  ok ok ok", label="a share of the creator's live",
        why="nobody shares an account a block stands with"),
    row("dm:send", {"to": "{minor_id}", "text": "hello"},       "U  U  F  F  F  I  ok F",
        label="to the minor",
        why="under 18 takes messages from friends only by default; the minor wrote to "
            "the creator first (an earlier row), so the creator may answer"),
    row("dm:list", {},                                            "U  U  ok ok ok ok ok ok"),
    row("dm:requests", {},                                        "U  U  ok ok ok ok ok ok"),
    row("dm:unread", {},                                          "U  U  ok ok ok ok ok ok"),
    row("dm:history", CONV,                                       "U  U  N  N  N  N  ok N",
        why="the creator's conversation with a friend"),
    row("dm:read", {**CONV, "message_id": "{dm_id}"},             "U  U  N  N  N  N  ok N"),
    row("dm:typing", CONV,                                        "U  U  N  N  N  N  ok N"),
    row("report:create", {"kind": "message", "reason": "spam", **CONV,
                          "message_id": "{dm_id}"},               "U  U  N  N  N  N  ok N",
        label="a direct message"),
    row("dm:accept", CONV,                                        "U  U  N  N  N  N  ok N"),
    row("dm:delete", CONV,                                        "U  U  N  N  N  N  ok N"),
    row("settings:get", {},                                       "U  U  ok ok ok ok ok ok"),
    row("settings:update", {},                                    "U  U  ok ok ok ok ok ok"),
    row("report:create", {"kind": "user", "reason": "spam", **CREATOR},
        "U  U  ok ok ok ok I  ok", label="a user"),
    row("report:create", {"kind": "chat", "reason": "spam", **LIVE,
                          "message_id": "{line1_id}"},            "U  U  ok ok ok ok ok ok",
        label="a live chat line"),
    row("notify:list", {},                                        "U  U  ok ok ok ok ok ok"),
    row("notify:unread", {},                                      "U  U  ok ok ok ok ok ok"),
    row("notify:read", {"id": "{notification_id}"},               "U  U  N  N  N  N  ok N",
        why="one of the creator's notifications"),
    row("notify:read_all", {},                                    "U  U  ok ok ok ok ok ok"),
    row("nudge:state", CREATOR,                                   "U  U  ok ok ok ok ok ok"),
    row("nudge:send", CREATOR,                                    "U  U  C  C  F  C  I  C",
        why="the creator is live: watch instead"),
    row("nudge:send", {"user_id": "{minor_id}"},                  "U  U  F  F  F  I  F  F",
        label="the minor", why="nobody asks someone under GOLIVE_LIVE_MIN_AGE to go live"),
    row("nudge:waiting", {},                                      "U  U  ok ok ok ok ok ok"),
    row("nudge:settings", {},                                     "U  U  ok ok ok ok ok ok"),
    row("nudge:insights", {},                                     "U  U  ok ok ok ok ok ok"),
    row("room:leave", LIVE,                                       "ok U  ok N  N  ok N  ok",
        why="the banned and the blocked were removed already"),
    row("user:block", CREATOR,                                    "U  U  ok ok ok ok I  ok",
        why="undone by the next row: the walk leaves no block behind"),
    row("user:unblock", CREATOR,                                  "U  U  ok ok ok ok I  ok"),
    row("user:unfollow", CREATOR,                                 "U  U  ok ok ok ok I  ok"),
    row("user:follow", CREATOR,                                   "U  U  ok ok F  ok I  ok"),
    row("alerts:set", {**CREATOR, "on": True},                    "U  U  ok ok F  ok I  ok"),
    row("live:end", {},                                           "U  U  N  N  N  N  ok ok",
        why="each creator ends their own live, last"),
]

USER_PATH = "/api/users/{creator_name}"
SDP = "application/sdp"
PUBLIC = "ok ok ok ok ok ok ok ok"
SIGNED_IN = "U U ok ok ok ok ok ok"
NOT_YOURS = "U U N N N N N N"
HOOK_PATH = "/api/me/webhooks/we_0000000000000000"
NO_REPLAY = "0123456789abcdef"  # the world has no replay: its rows see the refusals' order

#                                                                  an ou vi ba bl mi cr ot
HTTP_ROWS = [
    row("GET /healthz", None, PUBLIC),
    row("GET /metrics", None, PUBLIC, why="counters only: no user data"),
    row("GET /api/openapi.json", None, PUBLIC, why="the API's shape: no user data"),
    row("GET /socket.io/", None,                                  "ok U  ok ok ok ok ok ok",
        covers=("POST /socket.io/", "OPTIONS /socket.io/"),
        why="a Socket.IO connect with the principal's credentials"),
    row("GET /", None, PUBLIC, why="pages are shells: their data comes from the API"),
    row("GET /@{username}", None, PUBLIC, path="/@{creator_name}"),
    row("GET /studio", None, PUBLIC),
    row("GET /messages", None, PUBLIC),
    row("GET /notifications", None, PUBLIC),
    row("GET /wallet", None, PUBLIC),
    row("GET /webhooks", None, PUBLIC),
    row("GET /vendor/socket.io.msgpack.min.js", None, PUBLIC),
    row("GET /favicon.ico", None, PUBLIC),
    row("GET /static", None, PUBLIC, path="/static/golive.css"),
    row("GET /avatars/{user_id}/{version}.webp", None, PUBLIC,
        path="/avatars/{creator_id}/{avatar_version}.webp"),
    row("POST /api/register", {"username": "r{uniq}", "display_name": "New",
                               "password": "correct-horse-1", "birthdate": "1990-01-01"},
        PUBLIC, why="a token sent along is ignored"),
    row("POST /api/signin", {"username": "{friend_name}", "password": "correct-horse-1"},
        PUBLIC),
    row("GET /api/me", None, SIGNED_IN),
    row("PATCH /api/me", {"bio": "authz"}, SIGNED_IN),
    row("PATCH /api/me", {"bio": "authz", "birthdate": "1990-01-01"}, "U  U  I  I  I  I  I  I",
        label="a birthdate sent along"),
    row("PUT /api/me/avatar", "png", SIGNED_IN, raw=True),
    row("DELETE /api/me/avatar", None, SIGNED_IN),
    row("POST /api/me/stream_key", None,                          "U  U  ok ok ok F  ok ok",
        why="a WHIP stream key: 18+ as going LIVE"),
    row("GET /api/me/stream_key", None, SIGNED_IN, why="whether one exists, never the key"),
    row("POST /whip", "sdp", "U  U  U  U  U  U  U  U", raw=True, content_type=SDP,
        covers=("OPTIONS /whip",),
        why="only a stream key counts as the Bearer token, never a session"),
    row("DELETE /whip/{session}", None,                           "U  N  N  N  N  N  N  N",
        path="/whip/{uniq}", covers=("PATCH /whip/{session}", "OPTIONS /whip/{session}"),
        why="a session's URL and its key; PATCH is 405 (no trickle ICE)"),
    row("POST /whep/{username}", "sdp", "N  U  N  N  N  N  N  N", raw=True, content_type=SDP,
        path="/whep/{creator_name}", covers=("OPTIONS /whep/{username}",),
        why="the live ended with live:end above; bans and blocks as room:join's "
            "(tests/test_whip.py)"),
    row("DELETE /whep/{username}/{session}", None,                "N  N  N  N  N  N  N  N",
        path="/whep/{creator_name}/{uniq}",
        covers=("PATCH /whep/{username}/{session}", "OPTIONS /whep/{username}/{session}"),
        why="a player's session URL; PATCH is 405 (no trickle ICE)"),
    row("GET /api/users", None,                                   "ok U  ok ok ok ok ok ok",
        path="/api/users?q={creator_name}", why="a stale token is told, not ignored"),
    row("GET /api/users/{username}", None,                        "ok U  ok ok ok ok ok ok",
        path=USER_PATH),
    row("GET /api/lives", None, PUBLIC),
    row("POST /api/users/{username}/block", None,                 "U  U  ok ok ok ok I  ok",
        path=USER_PATH + "/block"),
    row("DELETE /api/users/{username}/block", None,               "U  U  ok ok ok ok I  ok",
        path=USER_PATH + "/block"),
    row("DELETE /api/users/{username}/follow", None,              "U  U  ok ok ok ok I  ok",
        path=USER_PATH + "/follow"),
    row("POST /api/users/{username}/follow", None,                "U  U  ok ok F  ok I  ok",
        path=USER_PATH + "/follow"),
    row("GET /api/gifts", None, PUBLIC),
    row("GET /api/coins/packages", None, PUBLIC),
    row("POST /api/coins/checkout", {"package_id": "coins_70", "coins": 10**9,
                                     "price_cents": 0},
        "U  U  ok ok ok F  ok ok", why="the price and coins sent are ignored"),
    row("POST /api/coins/checkout", {"package_id": "coins_70",
                                     "checkout_id": "{viewer_checkout}"},
        "U  U  ok C  C  F  C  C", label="the viewer's checkout id",
        why="the viewer's retry answers its purchase again; anyone else is refused"),
    row("POST /api/payments/webhook", {"type": "payment.succeeded", "data": {}},
        "U  U  U  U  U  U  U  U", why="only the provider's signature counts, never a session"),
    row("GET /api/wallet", None, SIGNED_IN),
    row("GET /api/wallet/history", None, SIGNED_IN),
    row("POST /api/wallet/cashout", {"request_id": "{uniq}", "diamonds": 2000},
        "U  U  $  $  $  F  $  $",
        why="nobody holds 2,000 diamonds; under 18 may not cash out"),
    row("GET /api/me/webhooks", None, SIGNED_IN, why="the caller's own endpoints"),
    row("POST /api/me/webhooks", {"url": "https://93.184.215.14/hook", "enabled": False},
        "U  U  ok ok ok ok ok ok", why="each caller's own endpoint (off: nothing is sent)"),
    row("POST /api/me/webhooks", {"url": "https://127.0.0.1/hook"},
        "U  U  I  I  I  I  I  I", label="a loopback URL",
        why="refused: SSRF (GOLIVE_WEBHOOK_ALLOW_PRIVATE is off)"),
    row("POST /api/me/webhooks/{endpoint_id}/rotate", None, NOT_YOURS, path=HOOK_PATH + "/rotate",
        why="an endpoint id that is not the caller's"),
    row("GET /api/me/webhooks/{endpoint_id}/deliveries", None, NOT_YOURS,
        path=HOOK_PATH + "/deliveries"),
    row("POST /api/me/webhooks/{endpoint_id}/test", None, NOT_YOURS, path=HOOK_PATH + "/test"),
    row("POST /api/me/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver", None,
        NOT_YOURS, path=HOOK_PATH + "/deliveries/wd_00000000000000000000/redeliver"),
    row("DELETE /api/me/webhooks/{endpoint_id}", None, NOT_YOURS, path=HOOK_PATH),
    row("GET /api/users/{username}/replays", None,                "ok U  ok ok ok ok ok ok",
        path=USER_PATH + "/replays",
        why="the replays the caller may watch: none across a block or a ban"),
    row("GET /api/replays/{replay_id}", None,                     "N  U  N  N  N  N  N  N",
        path="/api/replays/" + NO_REPLAY, why="tests/test_replays.py tries a real one"),
    row("GET /replays/{replay_id}/video", None,                   "N  U  N  N  N  N  N  N",
        path=f"/replays/{NO_REPLAY}/video", why="the file; refused as the replay's JSON is"),
    row("GET /replays/{replay_id}/thumb.jpg", None,               "N  U  N  N  N  N  N  N",
        path=f"/replays/{NO_REPLAY}/thumb.jpg"),
    row("DELETE /api/replays/{replay_id}", None,                  "U  U  N  N  N  N  N  N",
        path="/api/replays/" + NO_REPLAY, why="its creator only (forbidden for others)"),
    row("GET /replay/{replay_id}", None, PUBLIC, path=f"/replay/{NO_REPLAY}"),
    row("POST /api/signout", None, SIGNED_IN, fresh_token=True),
]

ROWS = SOCKET_ROWS + HTTP_ROWS


def covered_events() -> set[str]:
    return {r.name for r in SOCKET_ROWS}


def covered_routes() -> set[str]:
    return {name for r in HTTP_ROWS for name in (r.name, *r.covers)}


def markdown() -> str:
    """The matrix as the Markdown table docs/security.md shows."""
    head = "| event or route | " + " | ".join(HEADINGS) + " | note |"
    lines = [head, "|" + "---|" * (len(HEADINGS) + 2)]
    for r in ROWS:
        name = f"`{r.name}`" + (f" ({r.label})" if r.label else "")
        lines.append(f"| {name} | " + " | ".join(r.expect) + f" | {r.why} |")
    return "\n".join(lines)


def write_into(text: str) -> str:
    """`text` (docs/security.md) with the table under "## Authorization" replaced by
    markdown(): from its heading row to the first blank line after it."""
    head, sep, section = text.partition("## Authorization")
    start = section.index("| event or route |")
    end = section.find("\n\n", start)
    end = len(section) if end < 0 else end
    return head + sep + section[:start] + markdown() + section[end:]


if __name__ == "__main__":
    # python -m tests.support.authz_matrix [docs/security.md]: print the table, or
    # rewrite it in that file.
    import sys
    from pathlib import Path

    if len(sys.argv) > 1:
        doc = Path(sys.argv[1])
        doc.write_text(write_into(doc.read_text()))
    else:
        print(markdown())


__all__ = [
    "CODES",
    "HEADINGS",
    "HTTP_ROWS",
    "PRINCIPALS",
    "ROWS",
    "SOCKET_ROWS",
    "Row",
    "covered_events",
    "covered_routes",
    "markdown",
    "write_into",
]
