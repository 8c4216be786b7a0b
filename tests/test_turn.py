"""TURN for clients behind firewalls: the credentials golive issues (the TURN REST API
scheme, signaling/turn.py), their configuration, and viewers that may only use a relay
through a real coturn on loopback (tests/support/turn.py)."""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from media.ice import IceServer
from signaling.app import create_app
from signaling.config import Settings, add_arguments, settings_from_args
from signaling.turn import IceServers, TurnCredential, parse_turn_urls, rest_credential
from tests.support.peers import SocketPeer, go_live, open_tab, sio_connect
from tests.support.poll import poll
from tests.support.turn import (  # noqa: F401 (fixture)
    TURN_SECRET,
    Coturn,
    coturn,
    need_turnserver,
    start_coturn,
    stop_coturn,
)
from tests.support.viewer import DecodingViewer

peer = functools.partial(open_tab, peer=SocketPeer)


# --- the rule ------------------------------------------------------------------------

def test_a_credential_matches_a_known_vector() -> None:
    # Computed independently of Python's hmac:
    #   printf '%s' '1700000000:0123456789abcdef' \
    #     | openssl dgst -sha1 -hmac north-secret -binary | base64
    made = rest_credential(b"north-secret", "0123456789abcdef", 1_700_000_000 - 3600, 3600)
    assert made == TurnCredential("1700000000:0123456789abcdef",
                                  "EbqP+CUAhpDVdnQoq4ZF3iy+1us=", 1_700_000_000)


def test_credentials_differ_per_user_and_expiry_and_need_their_inputs() -> None:
    a = rest_credential(b"s", "aaaa", 1000.9, 60)
    assert a.username == "1060:aaaa"  # whole seconds: coturn reads an integer
    assert rest_credential(b"s", "bbbb", 1000, 60).credential != a.credential
    assert rest_credential(b"s", "aaaa", 1001, 60).credential != a.credential
    assert rest_credential(b"t", "aaaa", 1000, 60).credential != a.credential
    for secret, user, ttl in ((b"", "u", 60), (b"s", "", 60), (b"s", "u", 0)):
        with pytest.raises(ValueError):
            rest_credential(secret, user, 1000, ttl)


def test_turn_urls_are_checked() -> None:
    assert parse_turn_urls(" turn:127.0.0.1:3478?transport=udp , turn:t.example:3478"
                           "?transport=tcp,turns:t.example:5349 ") == (
        "turn:127.0.0.1:3478?transport=udp", "turn:t.example:3478?transport=tcp",
        "turns:t.example:5349")
    assert parse_turn_urls("") == ()
    for bad in ("stun:t.example:3478", "turn:", "turn://t.example", "turn:t.example:x",
                "turn:t.example?transport=sctp", "turns:t.example?transport=udp",
                "turn:t.example?foo=1", "http://t.example"):
        with pytest.raises(ValueError):
            parse_turn_urls(bad)


def test_ice_servers_hand_each_user_a_fresh_credential() -> None:
    now = [1000.0]
    static = [{"urls": ["stun:s.example:3478"]}]
    ice = IceServers(static, ("turn:t.example:3478",), b"k", 600, clock=lambda: now[0])
    first = ice.for_user("aaaa")
    assert first[0] == static[0]
    assert first[1] == {"urls": ["turn:t.example:3478"], "username": "1600:aaaa",
                        "credential": rest_credential(b"k", "aaaa", 1000, 600).credential}
    now[0] = 2000.0
    assert ice.for_user("aaaa")[1]["username"] == "2600:aaaa"  # refreshed on each ask
    assert ice.for_client("anon-0123456789ab") == {
        "ice_servers": ice.for_user("anon-0123456789ab"), "ice_transport_policy": "all"}
    assert "k" not in repr(ice).replace("kind", "")
    # without TURN: the static list, as before
    assert IceServers(static).for_user("aaaa") == static
    with pytest.raises(ValueError, match="GOLIVE_TURN_SECRET"):
        IceServers([], ("turn:t.example",), None)
    with pytest.raises(ValueError, match="needs a TURN server"):
        IceServers(static, (), None, transport_policy="relay")
    with pytest.raises(ValueError):
        IceServers([], (), None, transport_policy="none")
    # a static TURN server (fixed credentials) is enough for relay
    IceServers([{"urls": "turn:t.example", "username": "u", "credential": "c"}],
               transport_policy="relay")


def parse(argv: list[str], monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(argv))


def test_turn_flags_repeat_or_take_a_comma_list_and_beat_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    udp, tcp = "turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"
    assert parse([], monkeypatch).turn_url == ""
    assert parse(["--turn-url", udp, "--turn-url", tcp], monkeypatch).turn_url == f"{udp},{tcp}"
    assert parse(["--turn-url", f"{udp},{tcp}"], monkeypatch).turn_url == f"{udp},{tcp}"
    from_env = parse([], monkeypatch, GOLIVE_TURN_URLS=tcp, GOLIVE_TURN_SECRET="sh",
                     GOLIVE_TURN_TTL="120", GOLIVE_ICE_TRANSPORT_POLICY="relay")
    assert (from_env.turn_url, from_env.turn_secret, from_env.turn_ttl,
            from_env.ice_transport_policy) == (tcp, "sh", 120, "relay")
    assert parse(["--turn-url", udp], monkeypatch).turn_url == udp  # the flag replaces env
    assert parse([], monkeypatch).turn_ttl == 120
    for bad in (["--turn-url", "stun:x"], ["--turn-ttl", "59"],
                ["--ice-transport-policy", "host"]):
        with pytest.raises(SystemExit):
            parse(bad, monkeypatch)


def test_the_secret_is_never_shown(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GOLIVE_TURN_SECRET", "do-not-print-me")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parser.print_help()
    assert "do-not-print-me" not in capsys.readouterr().out
    settings = parse(["--turn-url", "turn:t.example"], monkeypatch)
    assert "do-not-print-me" not in repr(settings.client_ice())


def test_turn_without_its_secret_does_not_start() -> None:
    with pytest.raises(SystemExit, match="GOLIVE_TURN_SECRET"):
        Settings(turn_url="turn:t.example").client_ice()
    with pytest.raises(SystemExit, match="TURN server"):
        Settings(ice_transport_policy="relay").client_ice()


# --- through the server --------------------------------------------------------------

def turn_app(settings: Settings, coturn: Coturn | None, policy: str = "all",  # noqa: F811
             url: str | None = None) -> Any:
    settings.turn_url = url or (coturn.url if coturn else "turn:127.0.0.1:3478?transport=udp")
    settings.turn_secret = coturn.secret if coturn else TURN_SECRET
    settings.ice_transport_policy = policy
    return create_app(settings)


def check_credential(server: dict[str, Any], user_id: str, secret: str) -> None:
    expiry, _, who = server["username"].partition(":")
    assert who == user_id
    hour = 3600  # the default lifetime
    assert 0 < int(expiry) - time.time() <= hour
    made = rest_credential(secret.encode(), user_id, int(expiry) - hour, hour)
    assert server["credential"] == made.credential


async def test_every_join_and_go_live_gets_its_own_credential(
        aiohttp_client: Any, settings: Settings, redis: Redis, closers: list[Any]) -> None:
    client = await aiohttp_client(turn_app(settings, None))
    ann = await peer(client, "ann", closers)
    config = await ann.call("rtc:config", {})
    assert config["ok"] and config["ice_transport_policy"] == "all"
    (turn,) = config["ice_servers"]
    assert turn["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
    check_credential(turn, ann.user.id, TURN_SECRET)
    on_air = await go_live(ann, closers)
    check_credential(on_air.ack["ice_servers"][0], ann.user.id, TURN_SECRET)

    bob = await peer(client, "bob", closers)
    ack = await bob.call("room:join", {"user_id": ann.user.id})
    assert ack["ok"] and ack["ice_transport_policy"] == "all"
    check_credential(ack["ice_servers"][0], bob.user.id, TURN_SECRET)

    # A signed-out viewer: a credential for its per-socket id, only with a join.
    guest = await sio_connect(client, None, anonymous=True)
    closers.append(guest)
    refused = await guest.call("rtc:config", {})
    assert refused["ok"] is False and refused["error"]["code"] == "unauthorized"
    joined = await guest.call("room:join", {"user_id": ann.user.id})
    assert joined["ok"], joined
    anon_id = joined["ice_servers"][0]["username"].partition(":")[2]
    assert anon_id.startswith("anon-")
    check_credential(joined["ice_servers"][0], anon_id, TURN_SECRET)


async def relay_only_viewer(client: Any, creator: SocketPeer, who: str, closers: list[Any],
                            *, ice: list[dict[str, Any]] | None = None,
                            ) -> tuple[DecodingViewer, dict[str, Any]]:
    """A viewer that may only use TURN: it joins, answers with relay candidates only
    (`ice` replaces the ack's servers: a wrong or expired credential)."""
    p = await peer(client, who, closers)
    ack = await p.call("room:join", {"user_id": creator.user.id})
    assert ack["ok"], ack
    servers = [IceServer(s["urls"], s.get("username"), s.get("credential"))
               for s in (ice if ice is not None else ack["ice_servers"])]
    viewer = DecodingViewer(who, ice_servers=servers, relay_only=True)
    closers.append(viewer)
    answer = await viewer.answer(ack["offer"])
    candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(" typ relay" in line for line in candidates), answer
    done = await p.call("rtc:answer", {"live_id": ack["live"]["live_id"], "sdp": answer})
    assert done == {"ok": True}
    return viewer, ack


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_relay_only_viewer_decodes_through_coturn(
        aiohttp_client: Any, settings: Settings, redis: Redis, closers: list[Any],
        coturn: Coturn, transport: str) -> None:  # noqa: F811
    """Over UDP, and over TCP to coturn: a firewall that lets no UDP out at all."""
    client = await aiohttp_client(turn_app(
        settings, coturn, url=coturn.url if transport == "udp" else coturn.tcp_url))
    ann = await peer(client, "ann", closers)
    await go_live(ann, closers)
    viewer, ack = await relay_only_viewer(client, ann, "vic", closers)
    await poll(lambda: viewer.video_frames >= 30 and viewer.audio_frames >= 10, timeout=15,
               what="frames through the relay")
    username = ack["ice_servers"][0]["username"]
    # coturn made the allocation for this viewer's credential and relayed its media
    assert username in coturn.allocated_users()
    await viewer.close()
    relayed = await poll(lambda: coturn.usage().get(username, (0, 0))[1] > 50_000,
                         what="coturn's usage line for the viewer")
    assert relayed
    if transport == "tcp":  # the client's leg was TCP (coturn names it as the session closes)
        assert re.search(rf"closed \(2nd stage\), user <{re.escape(username)}>.*reason: TCP",
                         coturn.log())


async def test_wrong_or_expired_credentials_are_refused_by_coturn(
        aiohttp_client: Any, settings: Settings, redis: Redis, closers: list[Any],
        coturn: Coturn) -> None:  # noqa: F811
    client = await aiohttp_client(turn_app(settings, coturn))
    ann = await peer(client, "ann", closers)
    await go_live(ann, closers)
    wrong = coturn.ice_servers("wrong-secret", secret="not-the-secret")
    expired = coturn.ice_servers("expired", now=time.time() - 7200, ttl_s=3600)
    # aioice gives up gathering when the Allocate is refused: no relay candidate at all
    for name, ice in (("wes", wrong), ("xia", expired)):
        p = await peer(client, name, closers)
        ack = await p.call("room:join", {"user_id": ann.user.id})
        viewer = DecodingViewer(name, ice_servers=[IceServer(**s) for s in ice],
                                relay_only=True)
        closers.append(viewer)
        answer = await viewer.answer(ack["offer"])
        assert "a=candidate:" not in answer  # nothing to connect through
        assert viewer.pc.iceConnectionState != "completed"
    assert coturn.allocated_users() == []
    assert coturn.refused_users() == {wrong[0]["username"], expired[0]["username"]}


async def test_a_relay_outlives_its_credential(
        aiohttp_client: Any, settings: Settings, redis: Redis, closers: list[Any],
        tmp_path: Path) -> None:
    """Why the credential lifetime can be short (signaling/turn.py): coturn checks the
    expiry only when an allocation is made; a relay's refreshes succeed after it. coturn
    caps allocations at 6 s here, so the viewer refreshes after 5 s (5/6 of it)."""
    need_turnserver()
    turn = start_coturn(tmp_path / "short", extra=("max-allocate-lifetime=6",))
    try:
        client = await aiohttp_client(turn_app(settings, turn))
        ann = await peer(client, "ann", closers)
        await go_live(ann, closers)
        ttl_s = 3  # expires 2-3 s from now, before the refresh at 5 s
        ice = turn.ice_servers("vic-short", ttl_s=ttl_s)
        expires_at = int(ice[0]["username"].partition(":")[0])
        viewer, _ = await relay_only_viewer(client, ann, "vic", closers, ice=ice)
        await poll(lambda: viewer.video_frames >= 10, timeout=15, what="frames through the relay")
        refreshed = re.compile(rf"user <{re.escape(ice[0]['username'])}>: incoming packet "
                               r"REFRESH processed, success")
        await poll(lambda: refreshed.search(turn.log()), timeout=15, what="a refresh")
        assert time.time() > expires_at
        frames = viewer.video_frames
        await poll(lambda: viewer.video_frames >= frames + 30, timeout=10,
                   what="frames after the refresh")
        await viewer.close()
    finally:
        stop_coturn(turn)


def test_serve_refuses_turn_urls_without_the_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLIVE_", "REDIS_"))}
    env.update(GOLIVE_TURN_URLS="turn:127.0.0.1:3478", GOLIVE_DATA_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "signaling.cli", "serve", "--workers", "2"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "TURN URLs are configured without GOLIVE_TURN_SECRET" in done.stderr


def test_the_turn_bench_measures_both_kinds_of_viewer(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench.turn` (README, "TURN"): one round, each viewer decodes a frame."""
    from bench import turn as bench_turn

    need_turnserver()
    assert bench_turn.main(["--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "direct: median" in out and "relay: median" in out
    assert "coturn allocations: 1 (transport udp)" in out
