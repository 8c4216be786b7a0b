"""Every Redis key golive writes, named in one place.

Keys are per entity; a multi-key script only touches keys of the entities it
names, so a Redis Cluster move needs hash tags, not a rewrite.
"""

from __future__ import annotations


def user(user_id: str) -> str:
    return f"user:{user_id}"


def username(name: str) -> str:
    """Maps a lower-cased username to its user id (uniqueness is case-insensitive)."""
    return f"username:{name.lower()}"


def session(session_id: str) -> str:
    return f"session:{session_id}"


def followers(user_id: str) -> str:
    return f"followers:{user_id}"


def following(user_id: str) -> str:
    return f"following:{user_id}"


def blocks(user_id: str) -> str:
    """The set of users this user has blocked."""
    return f"blocks:{user_id}"


def blocked_by(user_id: str) -> str:
    """The set of users who blocked this user."""
    return f"blocked_by:{user_id}"


def live(creator_id: str) -> str:
    """The creator's current live (a hash); absent when offline."""
    return f"live:{creator_id}"


def live_directory() -> str:
    """Sorted set of live creators, scored by distinct viewers (Discover)."""
    return "lives"


def live_viewers(live_id: str) -> str:
    """Hash of viewer user id -> open connections watching that live."""
    return f"live_viewers:{live_id}"


def node(node_id: str) -> str:
    """A node's record (a hash: address, pid, started_at), kept alive by its heartbeat."""
    return f"node:{node_id}"


def node_lives(node_id: str) -> str:
    """Set of creators whose live media a node hosts (taken back when the node restarts)."""
    return f"node_lives:{node_id}"


def live_viewers_on(live_id: str, node_id: str) -> str:
    """Hash of viewer user id -> connections watching that live through one node (what a
    dead node's viewers were, taken out of live_viewers when it is reaped)."""
    return f"live_viewers:{live_id}:{node_id}"


def node_viewing(node_id: str) -> str:
    """Hash of live id -> creator id of the lives a node has viewers in."""
    return f"live_viewers:node:{node_id}"


def nodes() -> str:
    """Set of node ids that have heartbeated (signaling/presence.py)."""
    return "nodes"


def live_likes(live_id: str) -> str:
    """The like count of one live (a string counter, kept a day after the live). No
    script joins it with another key: it needs no hash tag in a Redis Cluster."""
    return f"live_likes:{live_id}"


def anonymous_sockets(address: str) -> str:
    """Open anonymous (signed-out) sockets from one client address, across nodes (a
    counter its one-key script alone touches: no hash tag needed in a Redis Cluster)."""
    return f"anon_sockets:{address}"


def node_alive(node_id: str) -> str:
    """A node's heartbeat: present (with a TTL) while the node runs."""
    return f"node_alive:{node_id}"


# --- live chat (engine/chat.py) ---------------------------------------------

def chat(live_id: str) -> str:
    """The live session's chat: a Stream whose entry ids are the room's order."""
    return f"chat:{live_id}"


def chat_last_sent(live_id: str) -> str:
    """Hash of user id -> ms of their last message in that live (slow mode)."""
    return f"chat_last:{live_id}"


def chat_rate(live_id: str, user_id: str) -> str:
    """A user's message count in the current rate window of one live."""
    return f"chat_rate:{live_id}:{user_id}"


def chat_joined(live_id: str, user_id: str) -> str:
    """Set while a "joined" line for that user may not be repeated."""
    return f"chat_joined:{live_id}:{user_id}"


def chat_settings(creator_id: str) -> str:
    """Hash of a creator's chat settings (slow mode)."""
    return f"chat_settings:{creator_id}"


def chat_filter(creator_id: str) -> str:
    """Set of a creator's filtered keywords (lower-cased)."""
    return f"chat_filter:{creator_id}"


def chat_bans(creator_id: str) -> str:
    """Set of users banned from a creator's lives and their chat."""
    return f"chat_bans:{creator_id}"


def chat_mutes(creator_id: str) -> str:
    """Hash of user id -> ms until which they may not chat in the creator's lives."""
    return f"chat_mutes:{creator_id}"


# --- gifts in the live room (engine/gift_room.py) --------------------------------

def gift_combo(live_id: str, sender_id: str, gift_id: str) -> str:
    """Hash of a sender's current streak of one gift in a live: streak, count, at (ms)."""
    return f"gift_combo:{live_id}:{sender_id}:{gift_id}"


def gift_board(live_id: str) -> str:
    """Sorted set of sender id -> coins spent on gifts in that live (the leaderboard)."""
    return f"gift_board:{live_id}"


def gift_totals(live_id: str) -> str:
    """Hash of a live's gift totals: coins, diamonds (the creator's), seq (gifts)."""
    return f"gift_totals:{live_id}"


def gift_seen(live_id: str) -> str:
    """Hash of "sender:transfer id" -> "streak combo seq": gifts the room already counted."""
    return f"gift_seen:{live_id}"


# --- direct messages (engine/messages.py) -------------------------------------

def dm(conversation_id: str) -> str:
    """A conversation's messages: a Stream."""
    return f"dm:{conversation_id}"


def dm_meta(conversation_id: str) -> str:
    """Hash: state, requester, the last message's preview, read and cleared marks."""
    return f"dm_meta:{conversation_id}"


def dm_inbox(user_id: str) -> str:
    """Sorted set of a user's conversations, scored by the last message's ms."""
    return f"dm_inbox:{user_id}"


def dm_requests(user_id: str) -> str:
    """Sorted set of message requests waiting for the user, scored like the inbox."""
    return f"dm_requests:{user_id}"


def dm_unread(user_id: str) -> str:
    """Hash of conversation id -> messages the user has not read."""
    return f"dm_unread:{user_id}"


def dm_settings(user_id: str) -> str:
    """Hash of a user's messaging settings (who may message them)."""
    return f"dm_settings:{user_id}"


def dm_rate(user_id: str) -> str:
    return f"dm_rate:{user_id}"


def dm_new(user_id: str) -> str:
    """Conversations a user started in the current window (spam control)."""
    return f"dm_new:{user_id}"


def dm_repeat(user_id: str, digest: str) -> str:
    """How often a user sent one text lately (spam control)."""
    return f"dm_repeat:{user_id}:{digest}"


# --- reports (engine/reports.py) ------------------------------------------------

def reports() -> str:
    """The moderation queue: a Stream of reports with the reported content."""
    return "reports"


def report_rate(user_id: str) -> str:
    return f"report_rate:{user_id}"


# --- nudges (engine/nudges.py) -------------------------------------------------

def nudge_settings(creator_id: str) -> str:
    """Hash of a creator's nudge settings: allow (viewers may nudge), dm (also post to Messages)."""
    return f"nudge_settings:{creator_id}"


def nudge_waiting(creator_id: str) -> str:
    """Sorted set of users who nudged the creator since their last live, scored by ms."""
    return f"nudge_waiting:{creator_id}"


def nudge_pair(sender_id: str, creator_id: str) -> str:
    """Set while `sender` may not nudge `creator` again (expires with the window)."""
    return f"nudge_pair:{sender_id}:{creator_id}"


def nudge_rate(sender_id: str) -> str:
    """Nudges a user sent in the current hourly window, across creators."""
    return f"nudge_rate:{sender_id}"


def nudge_day(creator_id: str, day: str) -> str:
    """Nudges a creator received on one UTC day (YYYY-MM-DD); expires after the insight span."""
    return f"nudge_day:{creator_id}:{day}"


def nudge_lives(creator_id: str) -> str:
    """Sorted set of a creator's recent lives (live id, scored by start seconds) for insights."""
    return f"nudge_lives:{creator_id}"


def live_nudgers(live_id: str) -> str:
    """Set of the users who were waiting when that live started (they get told once)."""
    return f"live_nudgers:{live_id}"


def live_nudge_stats(live_id: str) -> str:
    """Hash of one live's nudge figures: title, started_at, nudgers, came."""
    return f"live_nudge_stats:{live_id}"


def live_came(live_id: str) -> str:
    """Set of that live's nudgers who joined it."""
    return f"live_came:{live_id}"


# --- live alerts and the go-live fan-out (engine/live_alerts.py) -----------------

def live_alerts(creator_id: str) -> str:
    """Set of followers who asked to be told when the creator goes live."""
    return f"live_alerts:{creator_id}"


def notify_jobs() -> str:
    """List of go-live fan-out jobs (live ids) waiting for a worker."""
    return "notify_jobs"


def notify_jobs_active(node_id: str) -> str:
    """List of the fan-out jobs one node is running (a restarted node resumes them)."""
    return f"notify_jobs_active:{node_id}"


def notify_job(live_id: str) -> str:
    """Hash of one fan-out job: creator, the notification, phase, scan cursor, counts."""
    return f"notify_job:{live_id}"


# --- notifications inbox (engine/notifications.py) -------------------------------

def notifications(user_id: str) -> str:
    """Sorted set of a user's notification ids, scored by the ms of their latest activity."""
    return f"notif:{user_id}"


def notification_data(user_id: str) -> str:
    """Hash of notification id -> its JSON."""
    return f"notif_data:{user_id}"


def notifications_unread(user_id: str) -> str:
    """Set of the user's unread notification ids."""
    return f"notif_unread:{user_id}"


def notification_groups(user_id: str) -> str:
    """Hash of aggregation group ("nudge:2024-05-01") -> the notification id it merges into."""
    return f"notif_groups:{user_id}"


# --- the ledger (engine/ledger.py) ----------------------------------------------

def wallet(owner: str) -> str:
    """Hash of an owner's accounts: coins, diamonds, pending, paid (owners: user ids and
    the system's @platform, @world, @exchange)."""
    return f"wallet:{owner}"


def ledger_journal() -> str:
    """The double-entry journal: a Stream, never trimmed (the audit replays it)."""
    return "ledger:journal"


def wallet_log(user_id: str) -> str:
    """A user's journal entry ids as Stream entry ids (no longer written: wallet_entries
    replaced it; Ledger.history reads it for entries older than the List's)."""
    return f"wallet_log:{user_id}"


def wallet_entries(user_id: str) -> str:
    """A user's journal entry ids, oldest first: a List (one RPUSH per operation, cheaper
    in the gift script than an XADD); replaces wallet_log, which history() still reads
    for entries older than the list's first."""
    return f"wallet_entries:{user_id}"


def ledger_op(kind: str, scope: str, op_id: str) -> str:
    """An applied operation's parameters and result, by its idempotency id."""
    return f"ledger_op:{kind}:{scope}:{op_id}"


def payout(payout_id: str) -> str:
    """Hash of one cash-out: user, diamonds, status, times."""
    return f"payout:{payout_id}"


def payouts(user_id: str) -> str:
    """Sorted set of a user's payout ids, scored by request time (ms)."""
    return f"payouts:{user_id}"


def cashout_day(user_id: str, day: str) -> str:
    """Diamonds a user asked to cash out on one UTC day (YYYYMMDD): the daily cap."""
    return f"cashout_day:{user_id}:{day}"
