"""Every Redis key golive writes, named in one place, with the hash tags that make
them fit a Redis Cluster (docs/scaling.md, "Redis Cluster").

A Redis Cluster serves a script, a MULTI or a multi-key command only when all its keys
hash to one slot (else CROSSSLOT); a key's slot is the CRC16 of its hash tag, the text
between its first `{` and `}`, or of the whole name when it has none. So the keys are in
three kinds of group, one per set of keys some script or transaction joins:

- `{core}`: accounts, the graph, lives and viewer counts, chat, nudges, notifications,
  live alerts and the ledger. Their scripts chain them: a gift checks the creator's live,
  bans, blocks, followers and both birthdates and moves both wallets and the journal; a
  follow writes two users' sets; the go-live fan-out reads the creator's followers and
  writes many users' inboxes. One slot keeps every script atomic as on one Redis (the
  ledger's guarantees are unchanged); the cost is that one shard carries all of it.
- `{dm}`: direct messages. A send writes the conversation and both users' inboxes; no
  script joins them with the core.
- `{LIVE_ID}`: a live's gift room (combo, board, totals, seen), its own slot per live.
- `{wh}`: webhooks (endpoints, the delivery queue, deliveries, history): an event's
  script writes its deliveries, the queue and the history together.

Keys no script or transaction joins with another keep their names and their own slots:
sessions, node records and heartbeats, reports, rate counters, DM settings.

Until the tags (keys version 1) the same keys had no tag; engine/key_migration.py
renames them at start (`legacy_to_current`).
"""

from __future__ import annotations

CORE = "{core}"
"""The hash tag (prefix) of every key the core scripts join."""

DM = "{dm}"
"""The hash tag (prefix) of the direct messages' keys."""

WH = "{wh}"
"""The hash tag (prefix) of the webhooks' keys (engine/webhooks.py)."""

VERSION = "2"
"""The key layout: 1 without hash tags, 2 with (engine/key_migration.py)."""

_CORE_FAMILIES = frozenset((
    "user", "username", "followers", "following", "blocks", "blocked_by", "live",
    "live_viewers", "node_lives", "chat", "chat_last", "chat_rate", "chat_joined",
    "chat_settings", "chat_filter", "chat_bans", "chat_mutes", "nudge_settings",
    "nudge_waiting", "nudge_pair", "nudge_rate", "nudge_day", "nudge_lives", "live_nudgers",
    "live_nudge_stats", "live_came", "live_alerts", "notify_jobs_active", "notify_job",
    "notif", "notif_data", "notif_unread", "notif_groups", "wallet", "wallet_log",
    "wallet_entries", "ledger_op", "payout", "payouts", "cashout_day",
    # added with keys version 2: no old data, listed so every tagged family maps back
    "avatar", "chat_moderators", "live_alerted", "node", "node_reaping",
    "stream_key", "stream_key_owner"))
_CORE_NAMES = frozenset(("lives", "notify_jobs", "ledger:journal", "nodes", "lives_orphaned"))
_DM_FAMILIES = frozenset(("dm", "dm_meta", "dm_inbox", "dm_requests", "dm_unread", "dm_rate",
                          "dm_new", "dm_repeat"))
_LIVE_FAMILIES = frozenset(("gift_combo", "gift_board", "gift_totals", "gift_seen"))


def legacy_to_current(name: str) -> str | None:
    """The current name of a key named as before the hash tags (keys version 1), or
    None when `name` is not such a key (already current, untagged by design, or not
    golive's)."""
    if name.startswith("{"):
        return None
    if name in _CORE_NAMES:
        return CORE + name
    family, sep, rest = name.partition(":")
    if not sep or not rest:
        return None
    if family in _CORE_FAMILIES:
        return CORE + name
    if family in _DM_FAMILIES:
        return DM + name
    if family in _LIVE_FAMILIES and not rest.startswith("{"):
        live_id, sep, tail = rest.partition(":")
        return f"{family}:{{{live_id}}}{sep}{tail}"
    return None


def none(tag: str) -> str:
    """A declared key that a script call leaves unused, in the script's slot: a Redis
    Cluster checks the slot of every declared key, used or not."""
    return f"{tag}-"


def key_version() -> str:
    """A string key: the key layout this Redis holds (VERSION once migrated)."""
    return "golive:keys"


def user(user_id: str) -> str:
    return f"{CORE}user:{user_id}"


def username(name: str) -> str:
    """Maps a lower-cased username to its user id (uniqueness is case-insensitive)."""
    return f"{CORE}username:{name.lower()}"


def user_search(first: str) -> str:
    """Sorted set (all scores 0) of "term\\x00user id" for the terms starting with
    `first` (one folded character): the people index, engine/search.py."""
    return f"user_search:{first}"


def avatar(user_id: str) -> str:
    """The user's profile photo (WebP, base64), engine/avatars.py; its version is the
    `avatar` field of user:{id}."""
    return f"{CORE}avatar:{user_id}"  # written in one MULTI with user:{id}


def session(session_id: str) -> str:
    return f"session:{session_id}"


def stream_key(user_id: str) -> str:
    """The SHA-256 (hex) of the user's WHIP stream key; absent until they make one."""
    return f"{CORE}stream_key:{user_id}"  # a rotation writes it with the owner records


def stream_key_owner(digest: str) -> str:
    """The user id a stream key (by its SHA-256, hex) belongs to."""
    return f"{CORE}stream_key_owner:{digest}"


def followers(user_id: str) -> str:
    return f"{CORE}followers:{user_id}"


def following(user_id: str) -> str:
    return f"{CORE}following:{user_id}"


def blocks(user_id: str) -> str:
    """The set of users this user has blocked."""
    return f"{CORE}blocks:{user_id}"


def blocked_by(user_id: str) -> str:
    """The set of users who blocked this user."""
    return f"{CORE}blocked_by:{user_id}"


def live(creator_id: str) -> str:
    """The creator's current live (a hash); absent when offline."""
    return f"{CORE}live:{creator_id}"


def live_directory() -> str:
    """Sorted set of live creators, scored by distinct viewers (Discover)."""
    return CORE + "lives"


def recent_creators() -> str:
    """Sorted set of creators by the start of their latest live (Discover suggestions)."""
    return "recent_creators"


def live_viewers(live_id: str) -> str:
    """Hash of viewer user id -> open connections watching that live."""
    return f"{CORE}live_viewers:{live_id}"


def node(node_id: str) -> str:
    """A node's record and heartbeat (a hash: address, pid, host, started_at, instance,
    beats), with a TTL its node pushes back (engine/nodes.py)."""
    return f"{CORE}node:{node_id}"


def node_reaping(node_id: str) -> str:
    """The live node taking over a dead node's lives, viewers and jobs (a claim, TTL)."""
    return f"{CORE}node_reaping:{node_id}"


def lives_orphaned() -> str:
    """Sorted set of "creator/live id" of lives whose node died, scored by when they end
    unless their creator resumes them on another node (signaling/node_failure.py)."""
    return CORE + "lives_orphaned"


def node_lives(node_id: str) -> str:
    """Set of creators whose live media a node hosts (taken back when the node restarts)."""
    return f"{CORE}node_lives:{node_id}"


def live_viewers_on(live_id: str, node_id: str) -> str:
    """Hash of viewer user id -> connections watching that live through one node (what a
    dead node's viewers were, taken out of live_viewers when it is reaped)."""
    return f"{CORE}live_viewers:{live_id}:{node_id}"


def node_viewing(node_id: str) -> str:
    """Hash of live id -> creator id of the lives a node has viewers in."""
    return f"{CORE}live_viewers:node:{node_id}"


def nodes() -> str:
    """Set of node ids that announced themselves (a member without a record is dead)."""
    return CORE + "nodes"


def live_likes(live_id: str) -> str:
    """The like count of one live (a string counter, kept a day after the live). No
    script joins it with another key: it needs no hash tag in a Redis Cluster."""
    return f"live_likes:{live_id}"


def anonymous_sockets(address: str) -> str:
    """Open anonymous (signed-out) sockets from one client address, across nodes (a
    counter its one-key script alone touches: no hash tag needed in a Redis Cluster)."""
    return f"anon_sockets:{address}"



# --- live chat (engine/chat.py) ---------------------------------------------

def chat(live_id: str) -> str:
    """The live session's chat: a Stream whose entry ids are the room's order."""
    return f"{CORE}chat:{live_id}"


def chat_last_sent(live_id: str) -> str:
    """Hash of user id -> ms of their last message in that live (slow mode)."""
    return f"{CORE}chat_last:{live_id}"


def chat_rate(live_id: str, user_id: str) -> str:
    """A user's message count in the current rate window of one live."""
    return f"{CORE}chat_rate:{live_id}:{user_id}"


def chat_joined(live_id: str, user_id: str) -> str:
    """Set while a "joined" line for that user may not be repeated."""
    return f"{CORE}chat_joined:{live_id}:{user_id}"


def chat_settings(creator_id: str) -> str:
    """Hash of a creator's chat settings (slow mode)."""
    return f"{CORE}chat_settings:{creator_id}"


def chat_filter(creator_id: str) -> str:
    """Set of a creator's filtered keywords (lower-cased)."""
    return f"{CORE}chat_filter:{creator_id}"


def chat_bans(creator_id: str) -> str:
    """Set of users banned from a creator's lives and their chat."""
    return f"{CORE}chat_bans:{creator_id}"


def chat_mutes(creator_id: str) -> str:
    """Hash of user id -> ms until which they may not chat in the creator's lives."""
    return f"{CORE}chat_mutes:{creator_id}"


def chat_moderators(creator_id: str) -> str:
    """Set of the user ids a creator appointed to moderate their chats."""
    return f"{CORE}chat_moderators:{creator_id}"  # read by the chat scripts


# --- gifts in the live room (engine/gift_room.py) --------------------------------

def gift_combo(live_id: str, sender_id: str, gift_id: str) -> str:
    """Hash of a sender's current streak of one gift in a live: streak, count, at (ms)."""
    return f"gift_combo:{{{live_id}}}:{sender_id}:{gift_id}"


def gift_board(live_id: str) -> str:
    """Sorted set of sender id -> coins spent on gifts in that live (the leaderboard)."""
    return f"gift_board:{{{live_id}}}"


def gift_totals(live_id: str) -> str:
    """Hash of a live's gift totals: coins, diamonds (the creator's), seq (gifts)."""
    return f"gift_totals:{{{live_id}}}"


def gift_seen(live_id: str) -> str:
    """Hash of "sender:transfer id" -> "streak combo seq": gifts the room already counted."""
    return f"gift_seen:{{{live_id}}}"


# --- direct messages (engine/messages.py) -------------------------------------

def dm(conversation_id: str) -> str:
    """A conversation's messages: a Stream."""
    return f"{DM}dm:{conversation_id}"


def dm_meta(conversation_id: str) -> str:
    """Hash: state, requester, the last message's preview, read and cleared marks."""
    return f"{DM}dm_meta:{conversation_id}"


def dm_inbox(user_id: str) -> str:
    """Sorted set of a user's conversations, scored by the last message's ms."""
    return f"{DM}dm_inbox:{user_id}"


def dm_requests(user_id: str) -> str:
    """Sorted set of message requests waiting for the user, scored like the inbox."""
    return f"{DM}dm_requests:{user_id}"


def dm_unread(user_id: str) -> str:
    """Hash of conversation id -> messages the user has not read."""
    return f"{DM}dm_unread:{user_id}"


def dm_settings(user_id: str) -> str:
    """Hash of a user's messaging settings (who may message them)."""
    return f"dm_settings:{user_id}"


def dm_rate(user_id: str) -> str:
    return f"{DM}dm_rate:{user_id}"


def dm_new(user_id: str) -> str:
    """Conversations a user started in the current window (spam control)."""
    return f"{DM}dm_new:{user_id}"


def dm_repeat(user_id: str, digest: str) -> str:
    """How often a user sent one text lately (spam control)."""
    return f"{DM}dm_repeat:{user_id}:{digest}"


# --- reports (engine/reports.py) ------------------------------------------------

def reports() -> str:
    """The moderation queue: a Stream of reports with the reported content."""
    return "reports"


def report_rate(user_id: str) -> str:
    return f"report_rate:{user_id}"


# --- nudges (engine/nudges.py) -------------------------------------------------

def nudge_settings(creator_id: str) -> str:
    """Hash of a creator's nudge settings: allow (viewers may nudge), dm (also post to Messages)."""
    return f"{CORE}nudge_settings:{creator_id}"


def nudge_waiting(creator_id: str) -> str:
    """Sorted set of users who nudged the creator since their last live, scored by ms."""
    return f"{CORE}nudge_waiting:{creator_id}"


def nudge_pair(sender_id: str, creator_id: str) -> str:
    """Set while `sender` may not nudge `creator` again (expires with the window)."""
    return f"{CORE}nudge_pair:{sender_id}:{creator_id}"


def nudge_rate(sender_id: str) -> str:
    """Nudges a user sent in the current hourly window, across creators."""
    return f"{CORE}nudge_rate:{sender_id}"


def nudge_day(creator_id: str, day: str) -> str:
    """Nudges a creator received on one UTC day (YYYY-MM-DD); expires after the insight span."""
    return f"{CORE}nudge_day:{creator_id}:{day}"


def nudge_lives(creator_id: str) -> str:
    """Sorted set of a creator's recent lives (live id, scored by start seconds) for insights."""
    return f"{CORE}nudge_lives:{creator_id}"


def live_nudgers(live_id: str) -> str:
    """Set of the users who were waiting when that live started (they get told once)."""
    return f"{CORE}live_nudgers:{live_id}"


def live_nudge_stats(live_id: str) -> str:
    """Hash of one live's nudge figures: title, started_at, nudgers, came."""
    return f"{CORE}live_nudge_stats:{live_id}"


def live_came(live_id: str) -> str:
    """Set of that live's nudgers who joined it."""
    return f"{CORE}live_came:{live_id}"


# --- live alerts and the go-live fan-out (engine/live_alerts.py) -----------------

def live_alerts(creator_id: str) -> str:
    """Set of followers who asked to be told when the creator goes live."""
    return f"{CORE}live_alerts:{creator_id}"


def live_alerted(creator_id: str) -> str:
    """Set (with a TTL of the alert window) when a creator's followers were alerted."""
    return f"{CORE}live_alerted:{creator_id}"  # set by the alert script


def notify_jobs() -> str:
    """List of go-live fan-out jobs (live ids) waiting for a worker."""
    return CORE + "notify_jobs"


def notify_jobs_active(node_id: str) -> str:
    """List of the fan-out jobs one node is running (a restarted node resumes them)."""
    return f"{CORE}notify_jobs_active:{node_id}"


def notify_job(live_id: str) -> str:
    """Hash of one fan-out job: creator, the notification, phase, scan cursor, counts."""
    return f"{CORE}notify_job:{live_id}"


# --- notifications inbox (engine/notifications.py) -------------------------------

def notifications(user_id: str) -> str:
    """Sorted set of a user's notification ids, scored by the ms of their latest activity."""
    return f"{CORE}notif:{user_id}"


def notification_data(user_id: str) -> str:
    """Hash of notification id -> its JSON."""
    return f"{CORE}notif_data:{user_id}"


def notifications_unread(user_id: str) -> str:
    """Set of the user's unread notification ids."""
    return f"{CORE}notif_unread:{user_id}"


def notification_groups(user_id: str) -> str:
    """Hash of aggregation group ("nudge:2024-05-01") -> the notification id it merges into."""
    return f"{CORE}notif_groups:{user_id}"


# --- the ledger (engine/ledger.py) ----------------------------------------------

def wallet(owner: str) -> str:
    """Hash of an owner's accounts: coins, diamonds, pending, paid (owners: user ids and
    the system's @platform, @world, @exchange)."""
    return f"{CORE}wallet:{owner}"


def ledger_journal() -> str:
    """The double-entry journal: a Stream, never trimmed (the audit replays it)."""
    return CORE + "ledger:journal"


def wallet_log(user_id: str) -> str:
    """A user's journal entry ids as Stream entry ids (no longer written: wallet_entries
    replaced it; Ledger.history reads it for entries older than the List's)."""
    return f"{CORE}wallet_log:{user_id}"


def wallet_entries(user_id: str) -> str:
    """A user's journal entry ids, oldest first: a List (one RPUSH per operation, cheaper
    in the gift script than an XADD); replaces wallet_log, which history() still reads
    for entries older than the list's first."""
    return f"{CORE}wallet_entries:{user_id}"


def ledger_op(kind: str, scope: str, op_id: str) -> str:
    """An applied operation's parameters and result, by its idempotency id."""
    return f"{CORE}ledger_op:{kind}:{scope}:{op_id}"


def payout(payout_id: str) -> str:
    """Hash of one cash-out: user, diamonds, status, times."""
    return f"{CORE}payout:{payout_id}"


def payouts(user_id: str) -> str:
    """Sorted set of a user's payout ids, scored by request time (ms)."""
    return f"{CORE}payouts:{user_id}"


def cashout_day(user_id: str, day: str) -> str:
    """Diamonds a user asked to cash out on one UTC day (YYYYMMDD): the daily cap."""
    return f"{CORE}cashout_day:{user_id}:{day}"


# --- webhooks (engine/webhooks.py) ---------------------------------------------------

def webhook_endpoints(user_id: str) -> str:
    """Hash of a user's webhook endpoints: endpoint id -> JSON (url, events, secret...)."""
    return f"{WH}endpoints:{user_id}"


def webhook_due() -> str:
    """Sorted set of pending delivery ids scored by when they are due (ms); a claimed one
    is scored at its lease's end, so a node that dies mid-delivery leaves it due again."""
    return f"{WH}due"


def webhook_delivery(delivery_id: str) -> str:
    """Hash of one delivery: endpoint, event id and body, attempts, status, last error."""
    return f"{WH}delivery:{delivery_id}"


def webhook_history(endpoint_id: str) -> str:
    """List of an endpoint's latest delivery ids, newest first (bounded)."""
    return f"{WH}history:{endpoint_id}"


def webhook_event(event_id: str) -> str:
    """Marks an event as queued: the same event emitted again queues nothing."""
    return f"{WH}event:{event_id}"


REPLAYS = "{replays}"
"""The hash tag of the replays' keys (engine/replays.py): one slot, so saving a replay
(its hash, the creator's list, the expiry index) is one MULTI."""


def replay(replay_id: str) -> str:
    """Hash of one finalized replay (engine/replays.py Replay); absent while recording."""
    return f"{REPLAYS}replay:{replay_id}"


def creator_replays(creator_id: str) -> str:
    """Sorted set of a creator's replay ids, scored by the time their live ended."""
    return f"{REPLAYS}creator:{creator_id}"


def replays_expiry() -> str:
    """Sorted set of every replay id, scored by when it expires (the sweep's index)."""
    return f"{REPLAYS}expiry"
