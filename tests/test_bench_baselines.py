"""The bench's baselines: the naive aiortc relay (a real room with real peers, and its
server's protocol edges), node's socket.io chat server (its protocol edges, through a
real Socket.IO client with the msgpack parser), the side-by-side figures, and tiny real
runs of `fanout --baseline naive` and `chat --baseline node` whose JSON must be sane and
which must leave no process behind, also when interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiortc import RTCPeerConnection, RTCSessionDescription

from bench.baselines import BaselineServer, naive_relay_server, node_chat_server
from bench.fanout import best_quality_step, cpu_slope, marginal_cpu, render
from bench.naive_relay import NaiveRoom
from bench.report import chat_plots, fanout_plots
from bench.rtp_counting import RtpCounters, count_only
from media import MediaError, aiortc_private, restrict_host_addresses
from media.ice import rtc_configuration
from media.synthetic import HeadlessCreator
from tests.support.peers import sio_connect
from tests.support.servers import (
    assert_gone,
    bench_result,
    interrupt_run,
    pid_alive,
    run_bench,
)

RUN_TIMEOUT_S = 120

# --- the naive relay: a real room, real peers ----------------------------------------


async def _light_viewer(room: NaiveRoom, viewer_id: str
                        ) -> tuple[RTCPeerConnection, RtpCounters, asyncio.Event]:
    keyframe = asyncio.Event()
    counters = RtpCounters("vp8", on_first_keyframe=keyframe.set)
    pc = RTCPeerConnection(rtc_configuration())
    await pc.setRemoteDescription(RTCSessionDescription(sdp=await room.add_viewer(viewer_id),
                                                        type="offer"))
    for transceiver in pc.getTransceivers():
        count_only(transceiver.receiver, counters)
    await pc.setLocalDescription(await pc.createAnswer())
    await room.accept_answer(viewer_id, pc.localDescription.sdp)
    return pc, counters, keyframe


async def test_naive_room_relays_to_each_viewer_and_closes_clean() -> None:
    with restrict_host_addresses(["127.0.0.1"]):
        creator = HeadlessCreator.synthetic(320, 240)
        room = NaiveRoom("vp8")
        peers: list[RTCPeerConnection] = []
        try:
            await creator.accept_answer(await room.publish(await creator.offer()))
            with pytest.raises(MediaError) as second:
                await room.publish(await HeadlessCreator.synthetic(320, 240).offer())
            assert second.value.code == "conflict"
            viewers = [await _light_viewer(room, f"v{i}") for i in range(2)]
            peers += [pc for pc, _, _ in viewers]
            for _, _, keyframe in viewers:
                await asyncio.wait_for(keyframe.wait(), 15)
            await asyncio.sleep(1.0)
            for _, counters, _ in viewers:
                assert counters.frames > 10 and counters.audio_packets > 20
            # the naive part: every viewer's stock sender has an encoder of its own
            encoders = [aiortc_private.sender_encoder(v.pc.getSenders()[0])
                        for v in room.viewers.values()]
            assert len({id(e) for e in encoders if e is not None}) == 2
            with pytest.raises(MediaError) as twice:
                await room.accept_answer("v0", peers[0].localDescription.sdp)
            assert twice.value.code == "conflict"
            with pytest.raises(MediaError) as unknown:
                await room.accept_answer("nobody", peers[0].localDescription.sdp)
            assert unknown.value.code == "not_found"
            # a bad answer is invalid and drops that viewer, nobody else
            await room.add_viewer("bad")
            with pytest.raises(MediaError) as bad:
                await room.accept_answer("bad", "v=0 not really")
            assert bad.value.code == "invalid" and sorted(room.viewers) == ["v0", "v1"]
            await room.remove_viewer("v1")
            assert sorted(room.viewers) == ["v0"]
            tracks = [t for v in room.viewers.values() for t in v.tracks]
        finally:
            await asyncio.wait_for(room.close(), 15)
            for pc in peers:
                await asyncio.wait_for(pc.close(), 10)
            await asyncio.wait_for(creator.close(), 10)
        assert room.viewers == {} and all(t.readyState == "ended" for t in tracks)
        assert all(task.done() for task in room._sinks) or room._sinks == []
        await room.close()  # idempotent


async def test_naive_room_refuses_bad_offers() -> None:
    room = NaiveRoom("vp8")
    with pytest.raises(MediaError) as bad:
        await room.publish("not sdp")
    assert bad.value.code == "invalid" and room.publisher is None
    with pytest.raises(MediaError) as empty:
        await room.add_viewer("v")
    assert empty.value.code == "unavailable"
    await room.close()
    with pytest.raises(ValueError):
        NaiveRoom("av1")


# --- the baseline servers' protocol edges ------------------------------------------------


@contextlib.asynccontextmanager
async def _server(start: Callable[[Path], Any], tmp_path: Path) -> AsyncIterator[BaselineServer]:
    server = await start(tmp_path)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
        assert not pid_alive(server.pid)


async def _naive(tmp_path: Path) -> BaselineServer:
    return naive_relay_server(tmp_path, None, "vp8", 800_000)


async def _node(tmp_path: Path) -> BaselineServer:
    return await node_chat_server(tmp_path, None)


async def test_naive_server_answers_bad_input_with_error_acks(tmp_path: Path) -> None:
    async with _server(_naive, tmp_path) as server:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio_connect(server.url, None, wait_timeout=10)
        sio = await sio_connect(server.url, "alice", wait_timeout=10)
        try:
            for event, data, code in (
                    ("room:join", {"user_id": "bob"}, "not_found"),
                    ("room:join", {"user_id": 7}, "invalid"),
                    ("room:join", "not a map", "invalid"),
                    ("rtc:answer", {"live_id": "x", "sdp": "v=0"}, "not_found"),
                    ("live:start", {"offer": "v=0 nope"}, "invalid"),
                    ("live:start", {"offer": "v=0", "title": "t" * 101}, "invalid"),
                    ("live:end", {}, "not_found")):
                ack = await sio.call(event, data, timeout=10)
                assert ack["ok"] is False and ack["error"]["code"] == code, (event, ack)
        finally:
            await sio.disconnect()
        assert pid_alive(server.pid)  # still up after all that


async def test_node_server_broadcasts_and_answers_bad_input(tmp_path: Path) -> None:
    async with _server(_node, tmp_path) as server:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio_connect(server.url, None, wait_timeout=10)
        alice = await sio_connect(server.url, "alice", wait_timeout=10)
        bob = await sio_connect(server.url, "bob", wait_timeout=10)
        pushes: list[Any] = []
        pushed = asyncio.Event()

        def on_push(data: Any) -> None:
            pushes.append(data)
            pushed.set()

        bob.on("chat:messages", on_push)
        try:
            ack = await alice.call("chat:send", {"live_id": "node-carol", "text": "hi"},
                                   timeout=10)
            assert ack["error"]["code"] == "not_found"  # not a member yet
            for sio in (alice, bob):
                ack = await sio.call("room:join", {"user_id": "carol", "media": False},
                                     timeout=10)
                assert ack["ok"] and ack["live"]["live_id"] == "node-carol"
            assert ack["viewers"] == 2 and ack["offer"] is None
            for data, code in (({"live_id": "node-carol", "text": ""}, "invalid"),
                               ({"live_id": "node-carol", "text": "x" * 301}, "invalid"),
                               ("not a map", "invalid")):
                ack = await alice.call("chat:send", data, timeout=10)
                assert ack["ok"] is False and ack["error"]["code"] == code, ack
            ack = await alice.call("chat:send", {"live_id": "node-carol", "text": " hello "},
                                   timeout=10)
            assert ack["ok"] and ack["message"]["text"] == "hello"
            await asyncio.wait_for(pushed.wait(), 5)
            (push,) = pushes
            assert push["live_id"] == "node-carol" and push["prev"] is None
            assert [i["text"] for i in push["items"]] == ["hello"]
            assert push["items"][0]["user"]["id"] == "alice"
        finally:
            for sio in (alice, bob):
                await sio.disconnect()


# --- side-by-side figures (pure) -------------------------------------------------------


def _step(viewers: int, cpu: float, fps: float, p95: float, saturated: str | None = None
          ) -> dict[str, Any]:
    dist = {"n": 1, "min": fps, "p50": fps, "p95": fps, "p99": fps}
    return {"viewers": viewers, "watching": viewers, "cpu": {"server": cpu, "others": 0.0},
            "server_rss_mb": 100.0, "server_us_per_viewer_packet": 50.0,
            "delivered": {"packets_per_s": 150.0 * viewers, "mbit_per_s": 0.9 * viewers},
            "fps": dist, "loss": {"fraction": 0.0},
            "latency_ms": {"arrival": {"n": 9, "p50": p95 - 5, "p95": p95, "p99": p95 + 5}},
            "latency_cdf": [[p95 - 10, 0.1], [p95, 0.95], [p95 + 5, 1.0]],
            "spread_ms": {"all": {"p95": 3.0}},
            "joins": {"first_keyframe_s": {"p50": 0.2, "p95": 0.3},
                      "connected_s": {"p50": 0.1, "p95": 0.2}},
            "load": {"workers_max": 0.3, "creator": 0.2}, "saturated": saturated,
            "warnings": []}


def _fanout_result() -> dict[str, Any]:
    return {"config": {"fps": 30.0},
            "steps": [_step(1, 0.18, 30, 45), _step(10, 0.24, 30, 48), _step(50, 0.44, 30, 49)],
            "baseline": {"name": "naive", "what": "naive relay",
                         "steps": [_step(1, 0.2, 30, 60), _step(5, 0.6, 29.5, 45),
                                   _step(10, 1.0, 20, 200, "server CPU 100%")],
                         "stopped": "saturated at 10 viewers"}}


def test_marginal_cpu_and_quality_bar() -> None:
    result = _fanout_result()
    golive, naive = result["steps"], result["baseline"]["steps"]
    assert marginal_cpu(golive) == pytest.approx([0.18, 0.06 / 9, 0.2 / 40])
    assert marginal_cpu(naive) == pytest.approx([0.2, 0.1, 0.08])
    assert best_quality_step(golive)["viewers"] == 50
    assert best_quality_step(naive)["viewers"] == 5  # 1: p95 60 ms; 10: saturated
    assert best_quality_step([_step(1, 0.1, 25, 20)]) is None
    assert cpu_slope(naive) == pytest.approx(0.1)  # the saturated step left out
    assert cpu_slope(golive) == pytest.approx(0.005, abs=1e-3)
    assert cpu_slope(naive[:1]) is None


def test_render_puts_both_sides_side_by_side() -> None:
    text = render(_fanout_result())
    assert "baseline naive: naive relay" in text and "side by side (golive | naive)" in text
    assert "saturated at 10 viewers" in text
    assert "golive: largest step with median fps >= 29 and p95 < 50 ms: 50 viewers, " \
           "server 44% of a core" in text
    assert "naive: largest step with median fps >= 29 and p95 < 50 ms: 5 viewers" in text
    assert "golive 0.5%, naive 10.0% of a core: 19x" in text
    # one row per viewer count of either side: 1, 5, 10, 50
    table = text.split("side by side (golive | naive):\n")[1].splitlines()
    assert [row.split()[0] for row in table[2:6]] == ["1", "5", "10", "50"]


def test_plots_draw_both_sides(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert fanout_plots(_fanout_result(), tmp_path) == ["cpu.png", "fps.png", "latency.png"]
    chat_step = {"rate": 5.0, "deliveries_per_s": 25.0, "expected_deliveries_per_s": 25.0,
                 "members": 5, "latency_ms": {"p50": 2.0, "p99": 4.0},
                 "cpu": {"server": 0.1}, "load_cpu_max": 0.05}
    chat = {"steps": [chat_step], "baseline": {"name": "node", "steps": [chat_step]}}
    assert chat_plots(chat, tmp_path) == ["chat_deliveries.png", "chat_latency.png",
                                          "chat_cpu.png"]
    for name in ("cpu.png", "latency.png", "chat_latency.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chat_plots({"steps": []}, tmp_path) == []


# --- tiny real runs ------------------------------------------------------------------------






def _pids(side: dict[str, Any]) -> list[int]:
    return [pid for name, pid in side.get("processes", {}).items() if name != "bench"]


def test_fanout_naive_baseline_tiny_run(tmp_path: Path) -> None:
    proc = run_bench("fanout", "--viewers", "2", "--duration", "3", "--baseline", "naive",
                  "--out", str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, err + out
    result = bench_result(tmp_path)
    assert result["errors"] == [] and not result["interrupted"]
    baseline = result["baseline"]
    assert baseline["name"] == "naive"
    for side in (result, baseline):
        (step,) = side["steps"]
        assert step["viewers"] == step["watching"] == 2 and step["not_watching"] == {}
        assert step["joins"]["ok"] == 2 and step["joins"]["first_keyframe_s"]["p50"] > 0
        assert step["fps"]["min"] > 10 and step["delivered"]["video_packets_per_s"] > 0
        assert 0 < step["latency_ms"]["arrival"]["p50"] < 2000
        assert step["probes"]["count"] == 1 and step["probes"]["stamp_errors"] == 0
        assert step["cpu"]["server"] > 0 and step["server_rss_mb"] > 0
    assert "redis" in result["processes"] and "redis" not in baseline["processes"]
    assert baseline["processes"]["server"] != result["processes"]["server"]
    assert "side by side (golive | naive)" in out
    assert set(result["plots"]) >= {"cpu.png", "fps.png", "latency.png"}
    assert (tmp_path / next(tmp_path.iterdir()).name / "naive" / "server.log").exists()
    assert_gone(_pids(result) + _pids(baseline))


def test_fanout_paths_put_the_naive_baseline_beside_the_send_paths(tmp_path: Path) -> None:
    """`--paths native,python,naive`: the three servers' sweeps interleaved in one run and
    one table (the README's fan-out rows come from it)."""
    proc = run_bench("fanout", "--viewers", "2", "--duration", "2",
                     "--paths", "native,python,naive", "--rounds", "1",
                     "--out", str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, err + out
    result = bench_result(tmp_path)
    assert result["errors"] == [] and not result["interrupted"]
    assert set(result["paths"]) == {"native", "python", "naive"}
    for path, (side,) in result["paths"].items():
        (step,) = side["steps"]
        assert step["watching"] == 2 and step["fps"]["min"] > 10, path
        assert step["cpu"]["server"] > 0, path
    assert "naive" in out and "native/python" in out
    run_dir = tmp_path / next(tmp_path.iterdir()).name
    assert (run_dir / "naive-1" / "server.log").exists()
    assert_gone([pid for rounds in result["paths"].values() for side in rounds
                 for pid in side["processes"].values()])


def test_chat_node_baseline_tiny_run(tmp_path: Path) -> None:
    proc = run_bench("chat", "--clients", "5", "--rates", "5", "--duration", "3", "--warmup", "1",
                  "--baseline", "node", "--out", str(tmp_path),
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, err + out
    result = bench_result(tmp_path)
    assert result["errors"] == [] and not result["interrupted"]
    baseline = result["baseline"]
    assert baseline["name"] == "node" and baseline["errors"] == []
    for side in (result, baseline):
        assert side["clients_joined"] == 5 and side["clients_failed"] == 0
        (step,) = side["steps"]
        assert step["errors"] == 0 and step["sent"] > 0 and step["deliveries_per_s"] > 0
        assert 0 < step["latency_ms"]["p50"] <= step["latency_ms"]["p99"] < 5000
        assert step["cpu"]["server"] > 0 and step["server_rss_mb"] > 0
    assert "side by side (golive | node)" in out
    assert set(result["plots"]) == {"chat_deliveries.png", "chat_latency.png", "chat_cpu.png"}
    assert_gone(_pids(result) + _pids(baseline))




@pytest.mark.parametrize(("argv", "marker", "running"), [
    # the golive side is done: interrupt the naive baseline's sweep
    (["fanout", "--viewers", "2", "--duration", "10", "--baseline", "naive"],
     "baseline naive", ["bench.naive_server", "bench.creator", "bench.viewers"]),
    (["chat", "--clients", "5", "--rates", "5", "--duration", "10", "--warmup", "1",
      "--baseline", "node"], "baseline node", ["chat_server.js", "bench.chat_clients"]),
], ids=["naive", "node"])
def test_interrupted_baseline_run_leaves_no_process(tmp_path: Path, argv: list[str],
                                                    marker: str, running: list[str]) -> None:
    proc = run_bench(*argv, "--out", str(tmp_path), stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE)
    result, started = interrupt_run(proc, marker, tmp_path, RUN_TIMEOUT_S, tuple(running))
    assert result["steps"]  # golive's side was done
    assert_gone(started | set(_pids(result)) | set(_pids(result["baseline"])))
