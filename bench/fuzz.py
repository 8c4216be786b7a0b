"""The fuzzer: every Socket.IO event, every HTTP route and raw Engine.IO/Socket.IO frames
driven with generated input against a running golive, with what each case must show.

    python -m bench.fuzz --url http://127.0.0.1:8080 --redis redis://... --log serve.log \\
        --cases 5000

Targets:
- `sio:<event>` for every event the gateway registers: payloads from hypothesis
  strategies derived from the event's msgspec schema (msgspec.inspect): one a handler
  should accept (the run's ids: users, the live, a conversation, message ids; values
  inside each bound), the same with one field made odd (its bounds and past them, JSON
  garbage) or an unknown field, any schema-shaped one, and garbage alone; sent through a
  real Socket.IO client as a signed-in viewer, the live's creator or a signed-out visitor.
- `sio:unknown-event`: made-up event names.
- `http:<METHOD> <path>` for every operation of GET /api/openapi.json, cases from
  schemathesis (valid and invalid by the schema), sent with a viewer's token, none, a
  made-up or a signed-out one, now and then with a Content-Encoding the body lacks.
- `http:webhook-signed`: event-shaped webhook bodies signed with the webhook secret
  (only when it is given), so they reach past the signature check.
- `raw:connect`: Socket.IO CONNECTs with generated auth on fresh websockets.
- `raw:polling`: Engine.IO long-polling POSTs of generated payloads.
- `raw:frames`: hand-made Engine.IO/Socket.IO frames over a raw websocket: random text
  and bytes, msgpack packets of every type with wrong field types, bad namespaces,
  binary attachments, events with an ack id, and frames past the size limit.

Every case must be answered with {ok: true} or a stable error code (a 2xx or a 4xx/503
with that code over HTTP): an `internal`, a 500, no answer or a dropped connection is a
crash. After each case another client (the bystander) must be served (session:whoami and
GET /healthz). With `redis_url`, a snapshot of Redis before and after each refused case
must be equal but for the keys in VOLATILE (each says why it may change). With
`log_path`, every new line of the server's log is read after each case: a line with a
traceback or at level error is counted against the case's target.

`run(...)` returns {cases, crashes, tracebacks, half_written, skipped,
refusals_repeated, seconds, by_target, failures};
tests/test_fuzz.py runs it against a real `golive serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import sys
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import msgspec.inspect as mi
import socketio
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisDeprecationWarning, HypothesisWarning
from redis.asyncio import Redis

from golive.client import bare_socket

STABLE_CODES = frozenset({"invalid", "unauthorized", "forbidden", "not_found", "rate_limited",
                          "insufficient_funds", "conflict", "unavailable"})
HTTP_ERROR_STATUS = {"invalid": 400, "unauthorized": 401, "insufficient_funds": 402,
                     "forbidden": 403, "not_found": 404, "conflict": 409,
                     "rate_limited": 429, "unavailable": 503}
# aiohttp answers these itself, before golive's middleware, for input no route reads
# (a path parameter holding "/" -> 404 from the router is still a JSON not_found).
ACK_TIMEOUT_S = 5.0
HELD_S = 2.0   # a long-polling POST unanswered this long is counted as held (polling_target)
PASSWORD = "fuzz-password-1"
# A refused case may change these keys (a prefix each, after the {core}/{dm} hash tag), and
# only these: a run with "session:" alone excluded saw no other key change around 1,462
# cases. A key written on a timer could still land between two snapshots; such a change
# is told apart by sending the refusal again (Fuzzer._changed_again).
VOLATILE = {
    "session:": "the throwaway sign-ins made for POST /api/signout cases",
    "node:": "each node's heartbeat record, rewritten every few seconds",
    "nodes": "the node registry the heartbeat refreshes",
    "live_viewers:node:": "per-node viewer counts the heartbeat refreshes",
}
_TAG = re.compile(r"^\{[a-z]+\}")


def volatile(key: str) -> bool:
    """True for a key a refused case may legitimately change (VOLATILE)."""
    name = _TAG.sub("", key)
    return any(name == prefix or name.startswith(prefix) for prefix in VOLATILE)


# --- strategies from the msgspec schemas ------------------------------------------------

def _scalars() -> st.SearchStrategy[Any]:
    return (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
            | st.floats() | st.text(max_size=40) | st.binary(max_size=40)
            | st.sampled_from(["", "0", "-1", "1e309", "NaN", "null", "{}", "'; --",
                               "../../etc/passwd", "\x00", "0-0",
                               "18446744073709551615-18446744073709551615",
                               "99999999999999999999-1", "ff" * 8, "0" * 32])
            | st.sampled_from([("a", 5000), ("é", 300), ("\u202e", 64)]).map(
                lambda t: t[0] * t[1]))


def garbage() -> st.SearchStrategy[Any]:
    """Arbitrary msgpack-able values: scalars, lists, maps with odd keys, deep nesting."""
    deep = st.integers(20, 60).map(lambda n: _nest(n))
    return st.recursive(
        _scalars() | deep,
        lambda inner: (st.lists(inner, max_size=5)
                       | st.dictionaries(st.text(max_size=12) | st.integers(-5, 5), inner,
                                         max_size=5)),
        max_leaves=12)


def _nest(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = [value] if i % 2 else {"x": value}
    return value


def _stream_ids(known: list[str]) -> st.SearchStrategy[str]:
    made = st.builds(lambda a, b: f"{a}-{b}", st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
    odd = st.from_regex(r"\A[0-9]{1,25}-[0-9*]{1,25}\Z") | st.text(max_size=30)
    parts = [made, odd]
    if known:
        parts.insert(0, st.sampled_from(known))
    return st.one_of(*parts)


def for_type(kind: mi.Type, name: str, known: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    """Values of one msgspec type, within its bounds and just past them, with the run's
    known values for a field of this name (user ids, the live id...) mixed in."""
    base = _for_type(kind, name, known)
    if known.get(name):
        return st.sampled_from(known[name]) | base
    return base


def _for_type(kind: mi.Type, name: str, known: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    if isinstance(kind, mi.StrType):
        if kind.pattern:
            inside = st.from_regex(kind.pattern)
        else:
            low, high = kind.min_length or 0, min(kind.max_length or 80, 80)
            inside = st.text(min_size=low, max_size=high)
        edges = []
        if kind.max_length is not None:
            edges += ["x" * kind.max_length, "x" * (kind.max_length + 1)]
        return inside | st.sampled_from(edges or [""])
    if isinstance(kind, mi.IntType):
        low = kind.ge if kind.ge is not None else -(2**63)
        high = kind.le if kind.le is not None else 2**63
        return (st.integers(low, high)
                | st.sampled_from([low - 1, high + 1, 0, -1, 2**63, 2**64 - 1]))
    if isinstance(kind, mi.FloatType):
        return st.floats(kind.ge, kind.le) | st.floats()
    if isinstance(kind, mi.BoolType):
        return st.booleans()
    if isinstance(kind, mi.NoneType):
        return st.none()
    if isinstance(kind, mi.LiteralType):
        return st.sampled_from(list(kind.values)) | st.text(max_size=12)
    if isinstance(kind, mi.UnionType):
        return st.one_of(*(_for_type(t, name, known) for t in kind.types))
    if isinstance(kind, mi.ListType):
        return st.lists(_for_type(kind.item_type, name, known), max_size=min(
            (kind.max_length or 10) + 1, 12))
    if isinstance(kind, mi.StructType):
        return struct_strategy(kind, known)
    if isinstance(kind, mi.CustomType):  # StreamId (a message id cursor)
        return _stream_ids(known.get("message_id", []))
    return garbage()


def good_for(kind: mi.Type, name: str, known: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    """Values a handler should accept for this field: the run's known values for a field
    of this name (the live, a user, a conversation...), else values inside the type's
    bounds; so a case gets past validation and not_found to the handler's own rules."""
    if known.get(name):
        return st.sampled_from(known[name])
    if isinstance(kind, mi.StrType):
        if kind.pattern:
            return st.from_regex(kind.pattern)
        return st.text(min_size=kind.min_length or 0,
                       max_size=min(kind.max_length or 40, 40))
    if isinstance(kind, mi.IntType):
        low = kind.ge if kind.ge is not None else -1000
        high = kind.le if kind.le is not None else 1000
        return st.integers(low, min(high, low + 1000))
    if isinstance(kind, mi.FloatType):
        return st.floats(kind.ge or 0, kind.le or 1e9, allow_nan=False)
    if isinstance(kind, mi.UnionType):
        return st.one_of(*(good_for(t, name, known) for t in kind.types))
    if isinstance(kind, mi.ListType):
        return st.lists(good_for(kind.item_type, name, known), max_size=5)
    if isinstance(kind, mi.StructType):
        return struct_strategy(kind, known, good=True)
    if isinstance(kind, mi.CustomType):
        return st.sampled_from(known.get("message_id") or ["0-1"])
    return _for_type(kind, name, known)


def struct_strategy(info: mi.StructType, known: dict[str, list[Any]], *,
                    good: bool = False) -> st.SearchStrategy[Any]:
    """A payload shaped like the struct: its required fields, some of its optional ones;
    with `good`, each from good_for, else from for_type (bounds and past them)."""
    make = good_for if good else for_type
    required = {f.encode_name: make(f.type, f.encode_name, known)
                for f in info.fields if f.required}
    optional = {f.encode_name: make(f.type, f.encode_name, known)
                for f in info.fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


def payload_strategy(schema: type[Any], known: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    """What a fuzzed event sends: a payload a handler should accept; the same with one
    field made odd (any value of its type, its bounds and just past them, or garbage) or
    an unknown field added; any schema-shaped payload; or garbage alone."""
    info = mi.type_info(schema)
    assert isinstance(info, mi.StructType)
    good = struct_strategy(info, known, good=True)
    fields = {f.encode_name: f.type for f in info.fields}
    names = [*fields, "extra_field"]
    odd_one = st.tuples(good, st.sampled_from(names), st.data()).map(
        lambda t: {**t[0], t[1]: t[2].draw(
            st.one_of(for_type(fields[t[1]], t[1], known), garbage())
            if t[1] in fields else garbage())})
    return st.one_of(good, odd_one, good, odd_one, struct_strategy(info, known), garbage())


def event_schemas() -> dict[str, type[Any]]:
    """Every Socket.IO event golive registers and its payload schema (an app is built,
    nothing runs)."""
    from signaling.app import create_app
    from signaling.appkeys import GATEWAY
    from signaling.config import Settings

    app = create_app(Settings(secret="fuzz-" + "x" * 40))
    return app[GATEWAY].event_schemas


# --- raw frames ----------------------------------------------------------------------

def raw_frames(event_names: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    """("text"|"bytes", frame) as a raw Engine.IO websocket would carry them."""
    packet_types = st.integers(-2, 8) | st.sampled_from(["2", None, 2.5, True])
    namespaces = st.sampled_from(["/", "/admin", "", "//", "/nope?x=1", None, 5, ["/"]]) \
        | st.text(max_size=10)
    event_data = st.one_of(
        st.tuples(st.sampled_from(event_names), garbage()).map(list),
        st.lists(garbage(), max_size=3),
        garbage())
    packet = st.fixed_dictionaries(
        {"type": packet_types, "nsp": namespaces},
        optional={"data": event_data, "id": st.integers(-1, 2**40) | garbage(),
                  "attachments": st.integers(-1, 3) | garbage()})
    packed = packet.map(lambda p: msgpack.packb(p))
    bad_utf8 = st.sampled_from(event_names).map(lambda e: msgpack.packb(
        {"type": 2, "nsp": "/", "id": 7, "data": [e, {"text": "x"}]}).replace(b"x", b"\xff\xfe"))
    texts = st.one_of(
        st.text(max_size=60),
        st.sampled_from(["0", "1", "2", "3", "4", "5", "6", "2probe", "40", "41", "42[]",
                         "42/admin,[\"x\"]", '451-["chat:send",{"_placeholder":true,"num":0}]',
                         '42["session:whoami",{}]', "4{", "9" * 100]),
        st.text(max_size=40).map(lambda t: "4" + t))
    huge = st.sampled_from(["zeros", "event"]).map(_huge_frame)
    return st.one_of(
        texts.map(lambda t: ("text", t)),
        st.binary(max_size=80).map(lambda b: ("bytes", b)),
        packed.map(lambda b: ("bytes", b)),
        bad_utf8.map(lambda b: ("bytes", b)),
        huge.map(lambda b: ("bytes", b)),
    )


def _leaves_namespace(frame: bytes) -> bool:
    """True for a msgpack Socket.IO packet that leaves (or joins anew) the "/" namespace
    (python-socketio reads an empty namespace as "/")."""
    try:
        packet = msgpack.unpackb(frame, strict_map_key=False)
    except Exception:
        return False
    return (isinstance(packet, dict) and packet.get("type") in (0, 1)
            and type(packet.get("type")) is int and packet.get("nsp") in ("/", "", None))


def _huge_frame(kind: str) -> bytes:
    """A frame past GOLIVE_MAX_MESSAGE_BYTES (2 MiB): made on demand, not held in a
    strategy (hypothesis would print its repr)."""
    if kind == "zeros":
        return b"\x00" * (2 * 1024 * 1024 + 1)
    return msgpack.packb({"type": 2, "nsp": "/", "id": 3,
                          "data": ["chat:send", {"text": "y" * (3 << 20)}]})


# --- results ------------------------------------------------------------------------

@dataclass
class TargetStats:
    cases: int = 0
    ok: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    tracebacks: int = 0
    half_written: int = 0
    skipped: int = 0
    # the last message seen per refusal code: what the cases mostly ran into
    messages: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, "ok": self.ok, "refused": dict(self.refused),
                "messages": self.messages,
                "crashes": self.crashes, "tracebacks": self.tracebacks,
                "half_written": self.half_written, "skipped": self.skipped}


@dataclass
class Outcome:
    """One case's answer: "ok", a stable code, or a crash description."""

    code: str | None = None          # None: ok
    crash: str | None = None
    detail: Any = None

    @property
    def refused(self) -> bool:
        return self.crash is None and self.code is not None


def classify_ack(ack: Any) -> Outcome:
    """An ack as a fuzz outcome: ok, a stable code, or a crash (anything else)."""
    if isinstance(ack, dict) and ack.get("ok") is True:
        return Outcome()
    if isinstance(ack, dict) and ack.get("ok") is False and isinstance(ack.get("error"), dict):
        code = ack["error"].get("code")
        if code in STABLE_CODES:
            return Outcome(code=code, detail=str(ack["error"].get("message"))[:120])
        return Outcome(crash=f"error code {code!r}", detail=ack["error"])
    return Outcome(crash="malformed ack", detail=repr(ack)[:300])


def classify_http(status: int, body: bytes, content_type: str) -> Outcome:
    """An HTTP answer as a fuzz outcome: a 2xx, or the error status of a stable code with
    its {ok: false, error: {code}} body; anything else (a 500) is a crash."""
    if status >= 500 and status != 503:
        return Outcome(crash=f"HTTP {status}", detail=body[:300])
    try:
        data = json.loads(body)
    except ValueError:
        if status == 400 and content_type == "text/plain":
            # aiohttp's own answer to a request it cannot parse (a Content-Encoding it
            # has no decoder for), before any golive code: a refusal, if not our shape
            return Outcome(code="invalid", detail=f"aiohttp: {body[:80]!r}")
        return Outcome(crash=f"HTTP {status} with a body that is not JSON ({content_type})",
                       detail=body[:200])
    if 200 <= status < 300:
        return Outcome() if isinstance(data, dict) and data.get("ok") is not False else \
            Outcome(crash=f"HTTP {status} with ok false", detail=data)
    outcome = classify_ack(data)
    if outcome.crash is None and outcome.code is not None and \
            HTTP_ERROR_STATUS[outcome.code] != status:
        return Outcome(crash=f"HTTP {status} for code {outcome.code}", detail=data)
    return outcome


class LogReader:
    """The new lines of a server's log since the last read: those with a traceback."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = path.stat().st_size if path and path.exists() else 0

    def new_tracebacks(self) -> list[str]:
        if self.path is None or not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1   # a line still being written waits for the next read
        self.offset += end
        return [line for line in chunk[:end].decode(errors="replace").splitlines()
                if is_traceback(line)]


def is_traceback(line: str) -> bool:
    """A log line that carries a traceback or is an error."""
    try:
        record = json.loads(line)
    except ValueError:
        return "Traceback" in line or line.startswith(("ERROR", "CRITICAL"))
    if not isinstance(record, dict):
        return False
    return "exc" in record or record.get("level") in ("error", "critical")


async def snapshot(redis: Redis) -> dict[bytes, tuple[bytes, bool]]:
    """Every key's DUMP and whether it has a TTL, but the VOLATILE keys."""
    keys = sorted(k for k in await redis.keys("*") if not volatile(k.decode(errors="replace")))
    if not keys:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.dump(key)
            pipe.pttl(key)
        values = await pipe.execute()
    return {k: (values[2 * i], values[2 * i + 1] > 0) for i, k in enumerate(keys)}


def changed_keys(before: dict[bytes, tuple[bytes, bool]],
                 after: dict[bytes, tuple[bytes, bool]]) -> list[str]:
    """Keys added, removed or changed; a key with a TTL that is gone expired (a gift
    combo, a chat join mark), which is not the refused case's doing."""
    changed = []
    for key in before.keys() | after.keys():
        was, now = before.get(key), after.get(key)
        if was == now or (now is None and was is not None and was[1]):
            continue
        if was is not None and now is not None and was[0] == now[0]:
            continue   # the value is the same; only the TTL's presence moved
        changed.append(key.decode(errors="replace"))
    return sorted(changed)


# --- the run ------------------------------------------------------------------------

@dataclass
class Member:
    name: str
    id: str
    token: str
    sio: socketio.AsyncClient | None = None


class Fuzzer:
    """One run against a server: its users and sockets, the targets, the summary."""

    def __init__(self, url: str, *, redis_url: str | None = None, log_path: Path | None = None,
                 webhook_secret: str | None = None, go_live: bool = True) -> None:
        self.url = url.rstrip("/")
        self.redis_url = redis_url
        self.logs = LogReader(log_path)
        self.webhook_secret = webhook_secret
        self.go_live = go_live
        self.stats: dict[str, TargetStats] = {}
        self.failures: list[dict[str, Any]] = []
        self.members: dict[str, Member] = {}
        self.known: dict[str, list[Any]] = {}
        self.http: aiohttp.ClientSession | None = None
        self.redis: Redis | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closers: list[Callable[[], Awaitable[Any]]] = []
        self.tag = secrets.token_hex(3)
        self.late_tracebacks = 0
        self.revoked = "revoked"
        self.repeats = 0   # refusals sent twice to tell a half-write from an earlier tail
        self.packages: list[dict[str, Any]] = []

    # ---- the world ----

    async def _json(self, method: str, path: str, token: str | None = None,
                    **kw: Any) -> tuple[int, Any]:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for _ in range(20):
            async with self.http.request(method, self.url + path, headers=headers,
                                         **kw) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 429:
                    return resp.status, body
                await asyncio.sleep(min(5.0, float(resp.headers.get("Retry-After", "1"))))
        raise RuntimeError(f"{method} {path}: rate-limited for too long")

    async def _member(self, role: str) -> Member:
        username = f"fz{role}{self.tag}"
        status, body = await self._json("POST", "/api/register", json={
            "username": username, "display_name": f"Fuzz {role}", "password": PASSWORD,
            "birthdate": "1990-01-01"})
        if status != 201:
            raise RuntimeError(f"register {username}: {status} {body}")
        member = Member(username, body["user"]["id"], body["token"])
        self.members[role] = member
        return member

    async def _connect(self, member: Member) -> socketio.AsyncClient:
        sio = bare_socket()
        auth = {"anonymous": True} if member.name == "anonymous" else {"token": member.token}
        await sio.connect(self.url, auth=auth, transports=["websocket"], wait_timeout=10)
        member.sio = sio
        return sio

    async def _call(self, member: Member, event: str, payload: Any) -> Any:
        assert member.sio is not None
        return await member.sio.call(event, payload, timeout=ACK_TIMEOUT_S)

    async def setup(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.http = aiohttp.ClientSession()
        if self.redis_url:
            self.redis = Redis.from_url(self.redis_url)
        viewer, creator, bystander, other = [await self._member(r) for r in
                                             ("viewer", "creator", "bystander", "other")]
        for a, b in ((viewer, creator), (creator, viewer), (bystander, creator),
                     (other, creator)):
            await self._json("POST", f"/api/users/{b.name}/follow", a.token)
        for m in (viewer, creator, bystander):
            await self._connect(m)
        # a signed-out visitor's socket (the read-only events; the rest is unauthorized)
        self.members["anonymous"] = Member("anonymous", "", "")
        await self._connect(self.members["anonymous"])
        # a token that was valid and is signed out
        self.revoked = await self._throwaway_token()
        await self._json("POST", "/api/signout", self.revoked)
        _, gifts = await self._json("GET", "/api/gifts")
        _, packages = await self._json("GET", "/api/coins/packages")
        gift_ids = [g["id"] for g in gifts.get("gifts", [])]
        package_ids = [p["id"] for p in packages.get("packages", [])]
        self.packages = [p for p in packages.get("packages", []) if isinstance(p, dict)]
        if package_ids:
            await self._json("POST", "/api/coins/checkout", viewer.token,
                             json={"package_id": package_ids[-1]})
        known: dict[str, list[Any]] = {
            "user_id": [viewer.id, creator.id, other.id, bystander.id],
            "to": [creator.id, other.id, viewer.id],
            "creator_id": [creator.id, viewer.id],
            "creator": [creator.name, creator.id, viewer.name],
            "username": [creator.name, viewer.name, creator.id],
            "gift_id": gift_ids, "package_id": package_ids,
            "q": ["fz", creator.name[:4]],
            "message_id": [], "conversation_id": [], "live_id": [], "id": [],
        }
        if self.go_live:
            await self._start_live(creator, known)
        ack = await self._call(viewer, "dm:send", {"to": creator.id, "text": "hello"})
        if ack.get("ok"):
            known["conversation_id"].append(ack["conversation_id"])
            known["message_id"].append(ack["message"]["id"])
        ack = await self._call(creator, "notify:list", {})
        for item in ack.get("items", ack.get("notifications", []))[:3]:
            if isinstance(item, dict) and "id" in item:
                known["id"].append(item["id"])
        transfer = "fz" + secrets.token_hex(6)
        if gift_ids:
            await self._call(viewer, "gift:send", {"transfer_id": transfer,
                                                   "creator": creator.name,
                                                   "gift_id": gift_ids[0]})
        known["transfer_id"] = [transfer]
        known["request_id"] = [transfer]
        known["checkout_id"] = [transfer]
        self.known = known

    async def _start_live(self, creator: Member, known: dict[str, list[Any]]) -> None:
        from media.synthetic import HeadlessCreator

        media = HeadlessCreator.synthetic(160, 96, 10)
        self.closers.append(media.close)
        offer = await media.offer()
        ack = await self._call(creator, "live:start", {"title": "fuzz", "offer": offer})
        if not ack.get("ok"):
            raise RuntimeError(f"live:start refused: {ack}")
        await media.accept_answer(ack["answer"])
        live_id = ack["live"]["live_id"]
        known["live_id"].append(live_id)
        known["offer"] = [offer]
        known["sdp"] = [offer]
        viewer = self.members["viewer"]
        await self._call(viewer, "room:join", {"user_id": creator.id, "media": False})
        ack = await self._call(viewer, "chat:send", {"live_id": live_id, "text": "hi"})
        if ack.get("ok") and isinstance(ack.get("message"), dict):
            known["message_id"].append(ack["message"]["id"])

    async def close(self) -> None:
        for member in self.members.values():
            if member.sio is not None:
                with contextlib.suppress(Exception):
                    await member.sio.disconnect()
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                await closer()
        if self.http is not None:
            await self.http.close()
        if self.redis is not None:
            await self.redis.aclose()

    # ---- one case ----

    async def _bystander_served(self) -> str | None:
        """None when the other client is served; what failed otherwise."""
        member = self.members["bystander"]
        try:
            if member.sio is None or not member.sio.connected:
                await self._connect(member)
                return "the bystander's socket was dropped"
            ack = await self._call(member, "session:whoami", {})
            if not ack.get("ok"):
                return f"session:whoami refused: {ack}"
            assert self.http is not None
            async with self.http.get(self.url + "/healthz",
                                     timeout=aiohttp.ClientTimeout(total=ACK_TIMEOUT_S)) as r:
                if r.status != 200:
                    return f"/healthz answered {r.status}"
        except Exception as exc:
            return f"bystander: {type(exc).__name__}: {exc}"
        return None

    async def case(self, target: str, send: Callable[[], Awaitable[Outcome]],
                   shown: Any) -> None:
        """Run one case with every check around it, recording the result under target."""
        stats = self.stats.setdefault(target, TargetStats())
        before = await snapshot(self.redis) if self.redis is not None else None
        try:
            outcome = await send()
        except Skip:
            stats.skipped += 1
            return
        except Exception as exc:
            outcome = Outcome(crash=f"{type(exc).__name__}: {exc}"[:300])
        stats.cases += 1
        if outcome.crash:
            stats.crashes += 1
            self._fail(target, "crash", shown, outcome.crash, outcome.detail)
        elif outcome.code is None:
            stats.ok += 1
        else:
            stats.refused[outcome.code] += 1
            if isinstance(outcome.detail, str):
                stats.messages[outcome.code] = outcome.detail
            if outcome.code == "rate_limited":
                await asyncio.sleep(0.5)
        if outcome.refused and before is not None and self.redis is not None:
            changed = changed_keys(before, await snapshot(self.redis))
            if changed:
                changed = await self._changed_again(send, outcome)
            if changed:
                stats.half_written += 1
                self._fail(target, "half_written", shown, outcome.code, changed[:10])
        problem = await self._bystander_served()
        if problem:
            stats.crashes += 1
            self._fail(target, "bystander", shown, problem, None)
        found = self.logs.new_tracebacks()
        if found:
            stats.tracebacks += len(found)
            self._fail(target, "traceback", shown, found[0][:2000], len(found))

    async def _changed_again(self, send: Callable[[], Awaitable[Outcome]],
                             first: Outcome) -> list[str]:
        """The keys a refused case changes when sent once more. A change seen around a
        refusal may be the tail of an earlier case that succeeded (a gift's room record is
        written after its ack); a refusal repeated changes nothing again unless it is the
        one writing. [] when the repeat is not refused the same way."""
        assert self.redis is not None
        await asyncio.sleep(0.2)
        before = await snapshot(self.redis)
        try:
            again = await send()
        except Exception:
            return []
        if again.code != first.code:
            return []
        self.repeats += 1
        return changed_keys(before, await snapshot(self.redis))

    def _fail(self, target: str, kind: str, shown: Any, what: Any, detail: Any) -> None:
        if len(self.failures) < 200:
            self.failures.append({"target": target, "kind": kind, "case": _short(shown),
                                  "what": what, "detail": _short(detail)})

    # ---- the targets ----

    def _drive(self, strategy: st.SearchStrategy[Any], examples: int, run_seed: int | None,
               body: Callable[[Any], Awaitable[None]]) -> Awaitable[None]:
        """Hypothesis generates in a thread; each example runs as a coroutine on this loop."""
        loop = self.loop
        assert loop is not None

        @settings(max_examples=examples, database=None, deadline=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(strategy)
        def each(value: Any) -> None:
            try:
                asyncio.run_coroutine_threadsafe(body(value), loop).result()
            except Exception as exc:   # the fuzzer's own failure: recorded, the run goes on
                self._fail("fuzzer", "error", value, f"{type(exc).__name__}: {exc}", None)

        if run_seed is not None:
            each = seed(run_seed)(each)

        def quietly() -> None:
            with warnings.catch_warnings():
                # the garbage strategy's long constants trip hypothesis' `random` heuristic
                warnings.simplefilter("ignore", HypothesisDeprecationWarning)
                warnings.simplefilter("ignore", HypothesisWarning)
                each()

        return asyncio.to_thread(quietly)

    async def sio_target(self, event: str, schema: type[Any], examples: int,
                         run_seed: int | None) -> None:
        senders = ["viewer", "creator", "viewer", "creator", "anonymous"]
        strategy = st.tuples(st.sampled_from(senders), payload_strategy(schema, self.known))

        async def one(value: tuple[str, Any]) -> None:
            role, payload = value
            member = self.members[role]

            async def send() -> Outcome:
                if member.sio is None or not member.sio.connected:
                    await self._connect(member)
                try:
                    ack = await self._call(member, event, payload)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise Skip(str(exc)) from None   # not encodable by the client
                except socketio.exceptions.TimeoutError:
                    return Outcome(crash="no ack", detail=None)
                out = classify_ack(ack)
                if not member.sio.connected:
                    out = Outcome(crash="the server dropped the socket")
                return out

            await self.case(f"sio:{event}", send, (role, event, payload))

        await self._drive(strategy, examples, run_seed, one)

    async def unknown_events(self, examples: int, run_seed: int | None) -> None:
        names = st.text(min_size=1, max_size=40) | st.sampled_from(
            ["connect", "disconnect", "message", "*", "chat", ":", "a:b", "x" * 1000])

        async def one(value: tuple[str, Any]) -> None:
            name, payload = value
            member = self.members["viewer"]

            async def send() -> Outcome:
                if member.sio is None or not member.sio.connected:
                    await self._connect(member)
                try:
                    ack = await self._call(member, name, payload)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise Skip(str(exc)) from None
                except socketio.exceptions.TimeoutError:
                    # socket.io reserves connect/disconnect: the server does not dispatch
                    # them as events (no ack) - protocol.md; that is no crash
                    if name in ("connect", "disconnect", "connect_error"):
                        raise Skip("reserved event") from None
                    return Outcome(crash="no ack")
                return classify_ack(ack)

            await self.case("sio:unknown-event", send, value)

        await self._drive(st.tuples(names, garbage()), examples, run_seed, one)

    async def raw_target(self, examples: int, run_seed: int | None,
                         event_names: list[str]) -> None:
        state: dict[str, Any] = {"ws": None, "session": None, "probe": 1000}
        token = self.members["viewer"].token

        async def connect() -> aiohttp.ClientWebSocketResponse:
            if state["session"] is None:
                state["session"] = aiohttp.ClientSession()
                self.closers.append(state["session"].close)
            url = self.url + "/socket.io/?EIO=4&transport=websocket"
            ws = await state["session"].ws_connect(url, max_msg_size=0)
            opened = await ws.receive_str(timeout=ACK_TIMEOUT_S)
            assert opened.startswith("0"), opened
            await ws.send_bytes(msgpack.packb({"type": 0, "nsp": "/", "data": {"token": token}}))
            reply = msgpack.unpackb(await ws.receive_bytes(timeout=ACK_TIMEOUT_S))
            assert reply["type"] == 0, reply
            state["ws"] = ws
            return ws

        async def one(frame: tuple[str, Any]) -> None:
            kind, data = frame

            async def send() -> Outcome:
                try:
                    return await send_frame()
                except (ConnectionError, aiohttp.ClientError):
                    # the server closed this connection (a frame past the size limit):
                    # allowed; the bystander check shows the others are still served
                    if state["ws"] is not None:
                        await state["ws"].close()
                    state["ws"] = None
                    return Outcome(code="invalid", detail="closed")

            async def send_frame() -> Outcome:
                ws = state["ws"]
                if ws is None or ws.closed:
                    ws = await connect()
                if kind == "text":
                    await ws.send_str(data)
                    if data[:1] == "1":
                        # an Engine.IO CLOSE: this client said goodbye, the server closed
                        # its session (the websocket is left to the client): a new one
                        await ws.close()
                        state["ws"] = None
                        return Outcome()
                else:
                    await ws.send_bytes(data)
                    if _leaves_namespace(data):
                        # a Socket.IO DISCONNECT (or a CONNECT anew) for "/": this client
                        # left the namespace, and the server rightly ignores its events
                        # from then on: a new connection for the next case
                        await ws.close()
                        state["ws"] = None
                        return Outcome()
                state["probe"] += 1
                probe = state["probe"]
                try:
                    await ws.send_bytes(msgpack.packb(
                        {"type": 2, "nsp": "/", "id": probe, "data": ["session:whoami", {}]}))
                except (ConnectionError, RuntimeError):
                    pass
                outcome = await read_until_probe(ws, probe)
                if outcome.crash:   # whatever state it is in, the next case starts afresh
                    await ws.close()
                    state["ws"] = None
                return outcome

            await self.case("raw:frames", send, (kind, data[:200]))

        async def read_until_probe(ws: aiohttp.ClientWebSocketResponse, probe: int) -> Outcome:
            outcome = Outcome(code="invalid")   # nothing acked but the probe: dropped
            try:
                async with asyncio.timeout(ACK_TIMEOUT_S):
                    while True:
                        msg = await ws.receive()
                        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                        aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                            # closing a connection that sent garbage is allowed: the
                            # bystander check proves the server still serves others
                            return Outcome(code="invalid", detail="closed")
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            if msg.data == "2":
                                await ws.send_str("3")
                            continue
                        if msg.type != aiohttp.WSMsgType.BINARY:
                            continue
                        packet = msgpack.unpackb(msg.data, strict_map_key=False)
                        if packet.get("type") == 3 and packet.get("id") == probe:
                            return outcome
                        if packet.get("type") == 3:
                            answer = classify_ack((packet.get("data") or [None])[0])
                            if answer.crash:
                                return answer
                            if answer.code is None:
                                outcome = Outcome()
            except TimeoutError:
                return Outcome(crash="no answer to the probe after the frame")

        await self._drive(raw_frames(event_names), examples, run_seed, one)
        if state["ws"] is not None:
            await state["ws"].close()

    async def polling_target(self, examples: int, run_seed: int | None) -> None:
        """Engine.IO long-polling: POSTs of generated payloads (text and bytes, packets
        of every kind, closes) on a session a GET opened; answered 200 or 400, never a
        500. Skipped when the server accepts websocket only (`--workers N`)."""
        assert self.http is not None
        http = self.http
        base = self.url + "/socket.io/?EIO=4&transport=polling"
        state: dict[str, str | None] = {"sid": None}

        async def open_session() -> str | None:
            async with http.get(base) as resp:
                body = await resp.read()
            if resp.status != 200 or not body.startswith(b"0"):
                return None
            return str(json.loads(body[1:])["sid"])

        if await open_session() is None:
            return
        payloads = st.one_of(
            st.binary(max_size=60), st.text(max_size=60).map(str.encode),
            st.sampled_from([b"1", b"2", b"3", b"5", b"6", b"40", b"41", b'42["x"]',
                             b"4\x1e4", b"\x1e", b"b" + b"A" * 8, b"", b"4" * 1000]))

        async def one(payload: bytes) -> None:
            async def send() -> Outcome:
                sid = state["sid"] or await open_session()
                state["sid"] = sid
                try:
                    async with http.post(f"{base}&sid={sid}", data=payload,
                                         timeout=aiohttp.ClientTimeout(total=HELD_S)) as resp:
                        await resp.read()
                except TimeoutError:
                    # python-engineio answers a packet a client may not send (a ping, an
                    # open, a noop) by closing the session, and holds that POST until the
                    # close packet is fetched by a GET, or the ping timeout: counted apart
                    state["sid"] = None
                    return Outcome(code="held")
                if payload[:1] == b"1" or resp.status == 400:
                    state["sid"] = None   # closed by its client, or refused: a new one
                if resp.status == 200:
                    return Outcome()
                if resp.status == 400:
                    return Outcome(code="invalid")
                return Outcome(crash=f"HTTP {resp.status}")

            await self.case("raw:polling", send, payload[:100])

        await self._drive(payloads, examples, run_seed, one)

    async def connect_target(self, examples: int, run_seed: int | None) -> None:
        """The auth edge: a fresh Engine.IO websocket whose Socket.IO CONNECT carries
        generated auth (tokens of every type, real ones, signed-out and made-up ones,
        the anonymous flag) and namespace; answered CONNECT, or CONNECT_ERROR whose data
        holds a stable code."""
        viewer = self.members["viewer"]
        tokens = st.sampled_from([viewer.token, self.revoked, "x.y.z", "", viewer.token + "x",
                                  viewer.token[:-2], viewer.token.upper()]) | garbage()
        auths = st.one_of(
            st.fixed_dictionaries({"token": tokens}),
            st.fixed_dictionaries({}, optional={"token": tokens | st.none(),
                                                "anonymous": st.booleans() | garbage()}),
            garbage())
        packets = st.fixed_dictionaries(
            {"type": st.just(0), "nsp": st.sampled_from(["/", "/", "/", "/admin", ""])},
            optional={"data": auths})
        session = aiohttp.ClientSession()
        self.closers.append(session.close)

        async def one(packet: dict[str, Any]) -> None:
            async def send() -> Outcome:
                async with session.ws_connect(self.url + "/socket.io/?EIO=4&transport=websocket",
                                              max_msg_size=0) as ws:
                    opened = await ws.receive_str(timeout=ACK_TIMEOUT_S)
                    if not opened.startswith("0"):
                        return Outcome(crash=f"no Engine.IO open: {opened[:80]!r}")
                    try:
                        await ws.send_bytes(msgpack.packb(packet))
                    except (TypeError, ValueError, OverflowError) as exc:
                        raise Skip(str(exc)) from None
                    async with asyncio.timeout(ACK_TIMEOUT_S):
                        while True:
                            msg = await ws.receive()
                            if msg.type == aiohttp.WSMsgType.TEXT:
                                if msg.data == "2":
                                    await ws.send_str("3")
                                continue
                            if msg.type != aiohttp.WSMsgType.BINARY:
                                return Outcome(crash=f"the server closed ({msg.type.name})")
                            reply = msgpack.unpackb(msg.data, strict_map_key=False)
                            if reply.get("type") == 0:
                                return Outcome()
                            if reply.get("type") == 4:
                                data = reply.get("data")
                                detail = data.get("data") if isinstance(data, dict) else None
                                code = detail.get("code") if isinstance(detail, dict) else None
                                if packet["nsp"] != "/" and code is None:
                                    return Outcome(code="not_found")   # no such namespace
                                if code in STABLE_CODES:
                                    return Outcome(code=code)
                                return Outcome(crash="CONNECT_ERROR without a stable code",
                                               detail=data)

            await self.case("raw:connect", send, packet)

        await self._drive(packets, examples, run_seed, one)

    async def http_targets(self, per_target: int, run_seed: int | None) -> None:
        import schemathesis
        from schemathesis.generation.modes import GenerationMode

        schema = await asyncio.to_thread(schemathesis.openapi.from_url,
                                         self.url + "/api/openapi.json")
        operations = [r.ok() for r in schema.get_all_operations()]
        viewer = self.members["viewer"]
        usernames = [self.members[r].name for r in ("creator", "other")]
        for op in operations:
            target = f"http:{op.method.upper()} {op.path}"
            parts = [op.as_strategy(generation_mode=GenerationMode.POSITIVE),
                     op.as_strategy(generation_mode=GenerationMode.NEGATIVE)]
            if "{username}" in op.path:
                parts += [op.as_strategy(path_parameters={"username": u}) for u in usernames]
            # who asks: the viewer mostly, else no token, a made-up one or a signed-out one
            # ... and now and then a Content-Encoding the body does not have
            strategy = st.tuples(st.one_of(*parts), st.sampled_from(
                ["viewer", "viewer", "viewer", "none", "garbage", "revoked"]),
                st.sampled_from([None] * 8 + ["gzip", "deflate", "br", "x-odd"]))

            async def one(value: tuple[Any, str, str | None], target: str = target,
                          op: Any = op) -> None:
                case, who, encoding = value

                async def send() -> Outcome:
                    token: str | None = {"viewer": viewer.token, "none": None,
                                         "garbage": "x.y.z", "revoked": self.revoked}[who]
                    if op.path == "/api/signout" and who == "viewer":
                        token = await self._throwaway_token()
                    kwargs = case.as_transport_kwargs(base_url=self.url)
                    # schemathesis writes a random bearer for the security scheme: the
                    # case's `who` decides the Authorization header instead
                    headers = {k: v for k, v in (kwargs.get("headers") or {}).items()
                               if k.lower() not in ("user-agent", "x-schemathesis-testcaseid",
                                                    "authorization")}
                    if token is not None:
                        headers["Authorization"] = f"Bearer {token}"
                    if encoding is not None:
                        headers["Content-Encoding"] = encoding
                    return await self._http(kwargs, headers)

                await self.case(target, send, (who, encoding, _case_text(case)))

            await self._drive(strategy, per_target, run_seed, one)

    async def _throwaway_token(self) -> str:
        viewer = self.members["viewer"]
        status, body = await self._json("POST", "/api/signin", json={
            "username": viewer.name, "password": PASSWORD})
        return str(body["token"]) if status == 200 else "revoked"

    async def _http(self, kwargs: dict[str, Any], headers: dict[str, str]) -> Outcome:
        assert self.http is not None
        body: Any = None
        if "json" in kwargs:
            body = json.dumps(kwargs["json"]).encode()
            headers.setdefault("Content-Type", "application/json")
        elif kwargs.get("data") is not None:
            body = kwargs["data"]
            if isinstance(body, str):
                body = body.encode()
            elif not isinstance(body, bytes):
                raise Skip("a body aiohttp would re-encode")
        params = kwargs.get("params") or None
        try:
            async with self.http.request(kwargs["method"], kwargs["url"], params=params,
                                         headers=headers, data=body,
                                         timeout=aiohttp.ClientTimeout(total=ACK_TIMEOUT_S)
                                         ) as resp:
                raw = await resp.read()
                return classify_http(resp.status, raw, resp.content_type)
        except (ValueError, TypeError) as exc:   # a header aiohttp will not send
            raise Skip(str(exc)) from None

    async def webhook_target(self, examples: int, run_seed: int | None) -> None:
        from engine.payments import SIGNATURE_HEADER, sign

        secret = self.webhook_secret
        assert secret is not None
        # JSON string literals json.dumps would never write: lone surrogates, NUL
        raw_texts = st.sampled_from(['"\\ud800"', '"\\udfff"', '"a\\ud800b"', '"\\u0000"',
                                     '"\\ud83d\\ude00"']).map(_JsonRaw)
        texts = st.text(max_size=70) | raw_texts | st.sampled_from(["x" * 64, "x" * 65, ""])
        known_ids = self.known.get("user_id", []) + self.known.get("package_id", [])
        values = texts | st.sampled_from(known_ids or ["x"]) | garbage()
        op_ids = st.from_regex(r"\A[A-Za-z0-9_-]{8,64}\Z") | values
        kinds = st.sampled_from(["payment.succeeded", "payout.paid", "payout.failed",
                                 "other.kind"]) | st.text(max_size=10)
        data_fields = st.fixed_dictionaries({}, optional={
            name: values for name in ("payment_id", "user_id", "package_id", "currency",
                                      "payout_id")} | {"amount_cents": st.integers(-5, 10**6)
                                                       | garbage()})
        # payments that match a package (price, currency), so they reach the buyer check
        # and the ledger: each field valid or odd on its own
        packages = self.packages or [{"id": "x", "price_cents": 1, "currency": "USD"}]
        # a payment that matches a package (price, currency) with one field made odd, so
        # it reaches the buyer check and the ledger with that field
        users = self.known.get("user_id", []) or ["x"]
        payments = st.tuples(
            st.sampled_from(packages), st.sampled_from(users), op_ids,
            st.sampled_from(["user_id", "package_id", "currency", "amount_cents",
                             "payment_id", "none"]),
            st.one_of(raw_texts, raw_texts, values)).map(
                lambda t: {"type": "payment.succeeded", "data": {
                    "payment_id": t[2], "user_id": t[1], "package_id": t[0]["id"],
                    "amount_cents": t[0]["price_cents"], "currency": t[0]["currency"],
                    **({t[3]: t[4]} if t[3] != "none" else {})}})
        events = payments | st.fixed_dictionaries({"type": kinds | garbage(),
                                                   "data": data_fields | garbage()})

        async def one(event: Any) -> None:
            async def send() -> Outcome:
                body = _dumps_with_raw(event)
                stamp = int(time.time())
                headers = {SIGNATURE_HEADER: sign(secret, body, stamp),
                           "Content-Type": "application/json"}
                return await self._http({"method": "POST", "url": self.url
                                         + "/api/payments/webhook", "data": body}, headers)

            await self.case("http:webhook-signed", send, event)

        await self._drive(events, examples, run_seed, one)

    # ---- the whole run ----

    async def run(self, cases: int, *, run_seed: int | None = None,
                  only: str | None = None) -> dict[str, Any]:
        schemas = event_schemas()
        # live:end and live:start last: a live ended early would leave the rest of the
        # run without one (chat, gifts and likes answering not_found only)
        last = ["live:start", "live:end"]
        events = [e for e in schemas if e not in last] + [e for e in last if e in schemas]
        targets: list[tuple[str, Callable[[int], Awaitable[None]]]] = []
        for event in events:
            targets.append((f"sio:{event}", lambda n, e=event: self.sio_target(
                e, schemas[e], n, run_seed)))
        targets.append(("sio:unknown-event", lambda n: self.unknown_events(n, run_seed)))
        targets.append(("raw:frames", lambda n: self.raw_target(n, run_seed, events)))
        targets.append(("raw:connect", lambda n: self.connect_target(n, run_seed)))
        targets.append(("raw:polling", lambda n: self.polling_target(n, run_seed)))
        if self.webhook_secret:
            targets.append(("http:webhook-signed", lambda n: self.webhook_target(n, run_seed)))
        http_ops = 24   # about as many as the document has; the split is approximate
        if only:
            targets = [t for t in targets if re.search(only, t[0])]
        weight = len(targets) + (http_ops if not only or "http" in only else 0)
        per_target = max(2, cases // max(1, weight))
        started = time.monotonic()
        for name, run_one in targets:
            self.stats.setdefault(name, TargetStats())
            # raw frames and garbage weigh more: one of them is cheap and broad
            await run_one(per_target * (4 if name.startswith("raw:") else 1))
        if not only or "http" in only:
            await self.http_targets(per_target, run_seed)
        await asyncio.sleep(0.2)
        self.late_tracebacks = len(self.logs.new_tracebacks())
        return self.summary(time.monotonic() - started)

    def summary(self, seconds: float) -> dict[str, Any]:
        total = lambda attr: sum(getattr(s, attr) for s in self.stats.values())  # noqa: E731
        return {
            "cases": total("cases"), "crashes": total("crashes"),
            "tracebacks": total("tracebacks") + self.late_tracebacks,
            "half_written": total("half_written"), "skipped": total("skipped"),
            "refusals_repeated": self.repeats,
            "seconds": round(seconds, 1),
            "by_target": {name: s.as_dict() for name, s in sorted(self.stats.items())},
            "failures": self.failures,
        }


class Skip(Exception):
    """A generated value the client side cannot send (not a case)."""


class _JsonRaw(str):
    """A JSON literal written into the body as-is ('"\\ud800"': a lone surrogate escape,
    which json.dumps never writes)."""


def _dumps_with_raw(value: Any) -> bytes:
    marks: dict[str, str] = {}

    def swap(v: Any) -> Any:
        if isinstance(v, _JsonRaw):
            mark = f"@@raw{len(marks)}@@"
            marks[mark] = str(v)
            return mark
        if isinstance(v, dict):
            return {str(k) if not isinstance(k, str) else k: swap(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [swap(x) for x in v]
        if isinstance(v, bytes):
            return v.decode("latin-1")
        return v

    text = json.dumps(swap(value), allow_nan=True)
    for mark, raw in marks.items():   # the mark was written as a JSON string: "mark"
        text = text.replace(f'"{mark}"', raw)
    return text.encode()


def _short(value: Any) -> Any:
    text = repr(value)
    return text if len(text) <= 400 else text[:400] + "..."


def _case_text(case: Any) -> str:
    return (f"{case.method} {case.formatted_path} query={case.query!r} "
            f"body={case.body!r}")[:400]


async def run(url: str, cases: int = 500, *, redis_url: str | None = None,
              log_path: Path | str | None = None, webhook_secret: str | None = None,
              run_seed: int | None = None, only: str | None = None,
              go_live: bool = True) -> dict[str, Any]:
    """Fuzz the server at `url` with about `cases` cases in all; the summary
    {cases, crashes, tracebacks, half_written, skipped, seconds, by_target, failures}."""
    fuzzer = Fuzzer(url, redis_url=redis_url,
                    log_path=Path(log_path) if log_path else None,
                    webhook_secret=webhook_secret, go_live=go_live)
    try:
        await fuzzer.setup()
        return await fuzzer.run(cases, run_seed=run_seed, only=only)
    finally:
        await fuzzer.close()


def table(summary: dict[str, Any]) -> Iterator[str]:
    """The summary as lines of text: one per target, then the totals."""
    yield f"{'target':44} {'cases':>6} {'ok':>5} {'refused':>7} {'crash':>5} {'tb':>4} {'half':>4}"
    for name, s in summary["by_target"].items():
        yield (f"{name:44} {s['cases']:6} {s['ok']:5} {sum(s['refused'].values()):7} "
               f"{s['crashes']:5} {s['tracebacks']:4} {s['half_written']:4}")
    yield (f"{'total':44} {summary['cases']:6} crashes {summary['crashes']}, tracebacks "
           f"{summary['tracebacks']}, half-written {summary['half_written']}, "
           f"{summary['seconds']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--cases", type=int, default=1000, help="about how many cases in all")
    parser.add_argument("--redis", help="the server's Redis URL: refused cases are checked "
                                        "to write nothing")
    parser.add_argument("--log", type=Path, help="the server's log file, read for tracebacks")
    parser.add_argument("--seed", type=int, help="hypothesis seed, to replay a run")
    parser.add_argument("--only", help="a regex: run only the targets it matches")
    parser.add_argument("--no-live", action="store_true", help="do not go live first")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    import os

    summary = asyncio.run(run(args.url, args.cases, redis_url=args.redis, log_path=args.log,
                              webhook_secret=os.environ.get("GOLIVE_PAYMENT_WEBHOOK_SECRET"),
                              run_seed=args.seed, only=args.only, go_live=not args.no_live))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        for line in table(summary):
            print(line)
        for failure in summary["failures"][:30]:
            print(json.dumps(failure, default=str)[:1000], file=sys.stderr)
    bad = summary["crashes"] + summary["tracebacks"] + summary["half_written"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
