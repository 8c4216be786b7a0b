"""Network namespaces joined to the root namespace by a veth pair, and tc shaping on
the link: a viewer on a thin, lossy network, built by the bench or a test itself (root
only). `golive bench abr` (bench/abr.py) and tests/media/test_abr_netem.py use it (the
tests through tests/support/netns.py, a re-export).

Each namespace `golive-<n>` gets a veth pair: `gl<n>r` in the root namespace at
10.200.<n>.1/30 and `gl<n>n` inside at 10.200.<n>.2/30. Traffic the server sends to the
viewer leaves by `gl<n>r`, so that end's egress carries the downlink shaping (what a
thin last mile does to a stream); the namespace side's egress carries the uplink's.

This kernel (6.18, no modules directory) has `tbf` and `htb` but neither `netem` nor
any tc classifier or action (measured: "Specified qdisc kind is unknown"; `netem_reason()`
checks on the running kernel), so the
shaping is: the rate with `tbf` on `gl<n>r`'s egress (a queue of ~`queue_ms` at that
rate, what a router buffers), and loss with iptables' `statistic` match dropping that
share of the packets arriving in the namespace (same effect on the viewer: packets of
the downlink lost at random); delay needs `netem` and fails clearly without it.
`shape()` replaces the previous shaping in place (`tc qdisc replace`, the namespace's
INPUT chain flushed), so a running stream sees the change at once. `shape_up()` does the
same the other way (a creator's uplink: what the namespace sends): the rate with `tbf`
on `gl<n>n`'s egress, loss in the root namespace's INPUT, in a chain of its own
(`GOLIVE-UP<n>`) jumped to only for packets coming in by `gl<n>r`. Everything is
undone on `close()` (and the context manager's exit); `clean_stale()` removes what a
killed run left, by prefix. Each namespace's owner (the pid that opened it) is kept in
OWNERS/<name>: `clean_stale()` leaves alone a namespace whose owner still runs (a bench
and a test, or two tests, side by side on one machine: measured, a test's clean-up
deleted a running bench's namespace mid-round).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

PREFIX = "golive-"
UP_CHAIN = "GOLIVE-UP"  # + the index: the root namespace's loss on one uplink
OWNERS = Path(tempfile.gettempdir()) / "golive-netns-owners"


def unavailable_reason() -> str | None:
    """Why namespaces cannot be built here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces and tc need root (euid is not 0)"
    for tool in ("ip", "tc", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (iproute2, iptables)"
    # listing works where creating does not (no CAP_SYS_ADMIN, no /run/netns): make one
    name = f"{PREFIX}probe-{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns add` fails here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
    return None


def netem_reason() -> str | None:
    """Why `tc ... netem` cannot be used here, or None when it can: a netem qdisc is put
    on a throw-away veth pair and removed (the kernel answers "Specified qdisc kind is
    unknown" without the sch_netem module; this one has no `dummy` link type either).
    Needs root, like everything here."""
    dev = f"glp{os.getpid() % 1000000}"
    made = _run("ip", "link", "add", dev, "type", "veth", "peer", "name", f"{dev}p",
                check=False)
    if made.returncode != 0:
        return f"`ip link add type veth` fails here: {made.stderr.strip()}"
    try:
        done = _run("tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms",
                    check=False)
        return None if done.returncode == 0 else f"tc netem: {done.stderr.strip()}"
    finally:
        _run("ip", "link", "del", dev, check=False)


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done


def listed() -> list[str]:
    """The namespaces named with our prefix that exist now."""
    lines = _run("ip", "netns", "list", check=False).stdout.split("\n")
    return [line.split(" ")[0] for line in lines if line.startswith(PREFIX)]


def owner_alive(name: str) -> bool:
    """True when the process that opened namespace `name` (OWNERS/<name>) still runs and
    is not this one."""
    try:
        pid = int((OWNERS / name).read_text().strip())
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(indexes: Iterable[int] | None = None) -> list[str]:
    """Delete the namespaces named with our prefix (a veth pair goes with its namespace)
    whose owner is gone, or only those of `indexes`; a namespace another running process
    opened stays."""
    wanted = None if indexes is None else {f"{PREFIX}{i}" for i in indexes}
    gone = []
    for name in listed():
        if (wanted is None or name in wanted) and not owner_alive(name):
            _run("ip", "netns", "del", name, check=False)
            (OWNERS / name).unlink(missing_ok=True)
            gone.append(name)
    return gone


@dataclass(frozen=True)
class Shaping:
    """What a link does to packets: a rate (bit/s, None: unlimited), loss, delay."""

    rate_bps: int | None = None
    loss: float = 0.0  # fraction, 0-1
    delay_ms: float = 0.0
    # tbf's queue, as time at the rate: what a router buffers. 100 ms (4.5 KB at 300
    # kbit/s) dropped the tail of every keyframe (aiortc sends a frame's packets in one
    # burst, a 180p keyframe is ~5-10 KB): nothing decoded after the switch (measured)
    queue_ms: float = 400.0


class Namespace:
    """One namespace and its veth pair to the root namespace."""

    def __init__(self, index: int, name: str | None = None, *, prefix: str = PREFIX) -> None:
        """`name` (default `prefix` + index, golive-<index>): a name outside PREFIX is out
        of reach of every clean_stale(), an older copy's too (which deleted every golive-*
        namespace, running or not: measured, a Chromium test's namespace vanished mid-run)."""
        if not 1 <= index <= 254:
            raise ValueError("index is the third octet of 10.200.<index>.0/30: 1-254")
        self.index = index
        self.name = name or f"{prefix}{index}"
        self.root_dev = f"gl{index}r"
        self.ns_dev = f"gl{index}n"
        self.root_addr = f"10.200.{index}.1"
        self.ns_addr = f"10.200.{index}.2"
        self._up = False

    def open(self) -> Namespace:
        """Build the namespace, the veth pair and the addresses (a stale one of the
        same name is removed first)."""
        if owner_alive(self.name):
            raise RuntimeError(f"namespace {self.name} is in use by another process "
                               f"(pid in {OWNERS / self.name})")
        _run("ip", "netns", "del", self.name, check=False)
        _run("ip", "link", "del", self.root_dev, check=False)
        self._unshape_up()  # a killed run's chain for this link
        self._up = True  # from here on close() has something to undo
        try:
            OWNERS.mkdir(exist_ok=True)
            (OWNERS / self.name).write_text(str(os.getpid()))
            _run("ip", "netns", "add", self.name)
            _run("ip", "link", "add", self.root_dev, "type", "veth", "peer", "name", self.ns_dev)
            _run("ip", "link", "set", self.ns_dev, "netns", self.name)
            _run("ip", "addr", "add", f"{self.root_addr}/30", "dev", self.root_dev)
            _run("ip", "link", "set", self.root_dev, "up")
            self.exec_run("ip", "addr", "add", f"{self.ns_addr}/30", "dev", self.ns_dev)
            self.exec_run("ip", "link", "set", self.ns_dev, "up")
            self.exec_run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def exec_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace, to completion."""
        return _run("ip", "netns", "exec", self.name, *args)

    def exec_args(self, *args: str) -> list[str]:
        """The argv that runs `args` inside the namespace (for a long-lived child)."""
        return ["ip", "netns", "exec", self.name, *args]

    def shape(self, down: Shaping) -> None:
        """Shape the link toward the namespace, replacing whatever shaping was there:
        the rate on the root-side end's egress (tbf), loss on the namespace's input
        (iptables), delay through netem when the kernel has it."""
        if down.rate_bps is None:
            _run("tc", "qdisc", "del", "dev", self.root_dev, "root", check=False)
        else:
            # tbf's burst must hold a few MTU-sized packets and a timer tick's worth
            burst = max(down.rate_bps // 8 // 100, 3000)
            limit = max(int(down.rate_bps / 8 * down.queue_ms / 1000), burst + 1500)
            _run("tc", "qdisc", "replace", "dev", self.root_dev, "root", "handle", "1:", "tbf",
                 "rate", f"{down.rate_bps}bit", "burst", str(burst), "limit", str(limit))
        self.exec_run("iptables", "-F", "INPUT")
        if down.loss:
            self.exec_run("iptables", "-A", "INPUT", "-i", self.ns_dev, "-m", "statistic",
                          "--mode", "random", "--probability", f"{down.loss:.4f}", "-j", "DROP")
        if down.delay_ms:
            # a netem child under tbf (the root's only child, handle 1:1's class)
            if down.rate_bps is None:
                _run("tc", "qdisc", "replace", "dev", self.root_dev, "root", "netem",
                     "delay", f"{down.delay_ms}ms")
            else:
                _run("tc", "qdisc", "replace", "dev", self.root_dev, "parent", "1:1", "netem",
                     "delay", f"{down.delay_ms}ms")

    def set_link(self, up: bool, end: str = "ns") -> None:
        """Take one end of the link down or bring it back up: "ns", the namespace's (a
        dropped Wi-Fi, a tunnel: the far end just stops answering), or "root", the root
        namespace's (the server's own route to it goes, so its sends fail with
        ENETUNREACH). Addresses stay, so the same ICE pair works again once up."""
        state = "up" if up else "down"
        if end == "root":
            _run("ip", "link", "set", self.root_dev, state)
        else:
            self.exec_run("ip", "link", "set", self.ns_dev, state)

    def readdress(self) -> str:
        """Move the namespace's end to a new address (a phone moving to another network:
        the old address gone, sockets bound to it dead) and return it: 10.200.<n>.6,
        reached from the root namespace by a host route on the same veth pair."""
        new = f"10.200.{self.index}.6"
        self.exec_run("ip", "addr", "add", f"{new}/32", "dev", self.ns_dev)
        self.exec_run("ip", "addr", "del", f"{self.ns_addr}/30", "dev", self.ns_dev)
        self.exec_run("ip", "route", "add", f"{self.root_addr}/32", "dev", self.ns_dev)
        _run("ip", "route", "replace", f"{new}/32", "dev", self.root_dev)
        return new

    def unshape(self) -> None:
        """Lift every limit."""
        self.shape(Shaping())

    @property
    def up_chain(self) -> str:
        return f"{UP_CHAIN}{self.index}"

    def shape_up(self, up: Shaping) -> None:
        """Shape the link from the namespace (a creator's uplink), replacing whatever
        uplink shaping was there: the rate on the namespace end's egress (tbf), loss on
        the root namespace's input from this link (iptables, in this link's own chain).
        Delay needs netem, which this kernel lacks: refused."""
        if up.delay_ms:
            raise RuntimeError("uplink delay needs netem, which this kernel lacks")
        if up.rate_bps is None:
            _run("ip", "netns", "exec", self.name, "tc", "qdisc", "del", "dev", self.ns_dev,
                 "root", check=False)
        else:
            burst = max(up.rate_bps // 8 // 100, 3000)
            limit = max(int(up.rate_bps / 8 * up.queue_ms / 1000), burst + 1500)
            self.exec_run("tc", "qdisc", "replace", "dev", self.ns_dev, "root", "handle", "1:",
                          "tbf", "rate", f"{up.rate_bps}bit", "burst", str(burst),
                          "limit", str(limit))
        chain = self.up_chain
        _run("iptables", "-N", chain, check=False)  # exists already: fine
        _run("iptables", "-F", chain)
        jump = ("INPUT", "-i", self.root_dev, "-j", chain)
        if _run("iptables", "-C", *jump, check=False).returncode != 0:
            _run("iptables", "-I", *jump)
        if up.loss:
            _run("iptables", "-A", chain, "-m", "statistic", "--mode", "random",
                 "--probability", f"{up.loss:.4f}", "-j", "DROP")

    def _unshape_up(self) -> None:
        chain = self.up_chain
        while _run("iptables", "-D", "INPUT", "-i", self.root_dev, "-j", chain,
                   check=False).returncode == 0:
            pass
        _run("iptables", "-F", chain, check=False)
        _run("iptables", "-X", chain, check=False)

    def qdiscs(self) -> str:
        """`tc qdisc show` of the root-side end (for reports and failures)."""
        return _run("tc", "qdisc", "show", "dev", self.root_dev).stdout

    def close(self) -> None:
        """Delete the namespace (its veth end goes with it, and the pair with that).
        Safe to call twice."""
        if not self._up:
            return
        self._up = False
        self._unshape_up()
        _run("ip", "netns", "del", self.name, check=False)
        _run("ip", "link", "del", self.root_dev, check=False)
        (OWNERS / self.name).unlink(missing_ok=True)

    def __enter__(self) -> Namespace:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
