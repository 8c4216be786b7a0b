"""`python -m bench.send_paths`: the fan-out's per viewer-packet send, native beside Python.

What media/fanout.py does per frame once the room's packets are built, alone in one
process: for N viewers, each with its own UDP socket (an asyncio datagram transport, as
aioice gives each viewer) and its own libsrtp session (AES-CM-HMAC or AES-GCM),
    python        per viewer-packet: pylibsrtp protect() + transport.sendto()
    native        per frame: one media._fastpath.send_frame() for all viewers (UDP GSO)
    native-mmsg   the same with GSO off (sendmmsg)
Frames alternate as in a 640x360@30 ~800 kbit/s room: a video frame of 3 packets (1,200,
1,200 and 700 bytes) then an Opus packet (160 bytes). Viewers receive on loopback sockets
drained between frames (outside the timing), so the sender also pays the loopback
delivery as golive's server does on one machine.

The figure is process CPU time (not wall time: other work on the machine does not count)
per viewer-packet, over --rounds rounds in which the paths interleave; the median and
min-max per path and viewer count, and native/python in the same rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from typing import Any

import pylibsrtp

from media import aiortc_private
from media.fastpath import resolve

PATHS = ("native", "native-mmsg", "python")
PROFILES = {"aes-cm": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
            "aes-gcm": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28)}


def rtp(seq: int, size: int, ssrc: int) -> bytes:
    header = bytes([0x80, 96]) + (seq & 0xFFFF).to_bytes(2, "big") + (seq * 3000).to_bytes(
        4, "big") + ssrc.to_bytes(4, "big")
    return header + bytes(size - 12)


class Viewers:
    """N viewers: a sender transport and SRTP session each, and a receiving socket each."""

    def __init__(self, count: int, profile: str) -> None:
        self.count = count
        self.profile = profile
        self.transports: list[asyncio.DatagramTransport] = []
        self.receivers: list[socket.socket] = []
        self.sessions: list[pylibsrtp.Session] = []

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        srtp_profile, key_len = PROFILES[self.profile]
        for _ in range(self.count):
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            receiver.setblocking(False)
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            policy = pylibsrtp.Policy(key=bytes(range(key_len)), srtp_profile=srtp_profile,
                                      ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
            policy.allow_repeat_tx = True
            self.receivers.append(receiver)
            self.transports.append(transport)  # type: ignore[arg-type]
            self.sessions.append(pylibsrtp.Session(policy))

    def drain(self) -> int:
        got = 0
        for receiver in self.receivers:
            while True:
                try:
                    receiver.recv(2048)
                except BlockingIOError:
                    break
                got += 1
        return got

    def close(self) -> None:
        for transport in self.transports:
            transport.close()
        for receiver in self.receivers:
            receiver.close()


def frames(start: int, count: int) -> list[list[bytes]]:
    out = []
    seq_v, seq_a = start, start
    for i in range(count):
        if i % 2 == 0:
            out.append([rtp(seq_v, 1200, 1), rtp(seq_v + 1, 1200, 1), rtp(seq_v + 2, 700, 1)])
            seq_v += 3
        else:
            out.append([rtp(seq_a, 160, 2)])
            seq_a += 1
    return out


def run_path(path: str, viewers: Viewers, frame_list: list[list[bytes]]) -> tuple[float, int]:
    """CPU seconds spent sending, and viewer-packets sent."""
    native = resolve("native")[1]
    addrs = [r.getsockname() for r in viewers.receivers]
    cpu = 0.0
    sent = 0
    if path == "python":
        protects = [s.protect for s in viewers.sessions]
        pairs = list(zip(protects, viewers.transports, addrs, strict=True))
        for packets in frame_list:
            begin = time.process_time()
            for protect, transport, addr in pairs:
                for data in packets:
                    transport.sendto(protect(data), addr)
            cpu += time.process_time() - begin
            sent += len(packets) * len(pairs)
            viewers.drain()
        return cpu, sent
    assert native is not None
    native.set_gso(path == "native")
    targets = [(aiortc_private.srtp_context(s), t.get_extra_info("socket"), native.sockaddr(a))
               for s, t, a in zip(viewers.sessions, viewers.transports, addrs, strict=True)]
    try:
        for packets in frame_list:
            begin = time.process_time()
            failures = native.send(packets, targets)
            cpu += time.process_time() - begin
            assert not failures, failures
            sent += len(packets) * len(targets)
            viewers.drain()
    finally:
        native.set_gso(True)
    return cpu, sent


async def measure(counts: list[int], rounds: int, frame_count: int, profile: str,
                  paths: list[str]) -> dict[str, Any]:
    samples: dict[str, dict[int, list[float]]] = {p: {n: [] for n in counts} for p in paths}
    for n in counts:
        viewers = Viewers(n, profile)
        await viewers.open()
        try:
            seq = 1000
            for round_no in range(rounds):
                order = paths if round_no % 2 == 0 else list(reversed(paths))
                for path in order:
                    cpu, sent = run_path(path, viewers, frames(seq, frame_count))
                    seq += frame_count * 3
                    samples[path][n].append(cpu / sent * 1e6)
                    await asyncio.sleep(0)  # let asyncio flush anything it buffered
        finally:
            viewers.close()
    summary: dict[str, Any] = {}
    for path in paths:
        for n in counts:
            us = samples[path][n]
            summary.setdefault(str(n), {})[path] = {
                "median_us": round(statistics.median(us), 2),
                "min_us": round(min(us), 2), "max_us": round(max(us), 2), "rounds": us}
    for n in counts:
        row = summary[str(n)]
        if "native" in row and "python" in row:
            row["native_over_python"] = round(row["native"]["median_us"]
                                              / row["python"]["median_us"], 3)
    return summary


def render(summary: dict[str, Any], profile: str) -> str:
    lines = [f"server CPU per viewer-packet, us ({profile}; median, min-max over rounds):"]
    for n, row in summary.items():
        parts = [f"{path} {v['median_us']} ({v['min_us']}-{v['max_us']})"
                 for path, v in row.items() if isinstance(v, dict)]
        ratio = row.get("native_over_python")
        lines.append(f"  {n:>4} viewers: " + ", ".join(parts)
                     + (f"; native/python {ratio}" if ratio is not None else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.send_paths", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="100,200", help="viewer counts (100,200)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--frames", type=int, default=300,
                        help="frames per path per round, video and audio alternating (300)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="aes-cm",
                        help="SRTP profile of every viewer (aes-cm)")
    parser.add_argument("--json", action="store_true", help="print the JSON too")
    args = parser.parse_args(argv)
    path, native = resolve("native")
    paths = list(PATHS) if native is not None else ["python"]
    if native is None:
        print(f"bench.send_paths: {path.reason}", file=sys.stderr)
    counts = [int(x) for x in args.viewers.split(",")]
    summary = asyncio.run(measure(counts, args.rounds, args.frames, args.profile, paths))
    print(render(summary, args.profile))
    if args.json:
        print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
