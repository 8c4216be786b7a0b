"""The fan-out's two send paths, and choosing one at start.

    python  each viewer-packet: pylibsrtp protect() + asyncio sendto() (media/viewer_link.py)
    native  each frame: one C call (media/_fastpath.c) protects the frame's packets for every
            viewer of a wire profile through the viewer's own libsrtp session and hands each
            viewer's packets to the kernel in one syscall (UDP GSO or sendmmsg)

The native path is a compiled extension, optional at install: without a C compiler it is
not built and the Python path runs. It calls srtp_protect through the address pylibsrtp's
own bundled libsrtp exports, on the srtp_t aiortc's Session holds, so there is ONE SRTP
state per viewer (rollover counter, replay window) for both paths and NACK retransmits.
That needs libsrtp 2's signature, checked here from pylibsrtp's cffi declaration.

Per viewer-packet (bench/send_paths.py, 100 and 200 viewers, 5 interleaved rounds):
native 3.4-3.5 us, python 6.8-7.9 us with AES-CM-HMAC; 2.9 vs 6.4-6.5 us with AES-GCM.
In the whole server at 100 viewers (`golive bench fanout --paths native,python`): 21.7 vs
28.8 us per delivered viewer-packet (medians of 3 rounds); what remains is per-viewer
upkeep (RTCP, ICE), RTP building and the event loop, not the send.

Chosen once per process (GOLIVE_FANOUT, signaling/config.py): "native" (the default) when
it loads and its check passes, else "python" with the reason, for the startup log and
/metrics. The media package takes the choice as a plain FanoutPath value.
"""

from __future__ import annotations

import errno
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from media import aiortc_private

NATIVE = "native"
PYTHON = "python"
PATHS = (NATIVE, PYTHON)

# pylibsrtp's cffi declaration of libsrtp 2's srtp_protect(srtp_t, void *hdr, int *len):
# protects in place, the buffer having room for the trailer. libsrtp 3 takes separate
# in/out buffers and size_t lengths; calling it with this layout would corrupt memory.
LIBSRTP2_PROTECT = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"

# A native send the kernel could not take now (its socket buffer is full): the rest of the
# frame goes through asyncio's buffer instead, as on the Python path.
WOULD_BLOCK = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})
# Errors that concern this frame, not the socket (a route flapping, a firewall rule, an
# ICMP error reported late): the rest of the frame is lost for this viewer, as the
# Python path (asyncio) loses it, and NACK/PLI repair it. Any other error ends the viewer.
TRANSIENT = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                       errno.EPERM, errno.EMSGSIZE, errno.EINTR})


@dataclass(frozen=True)
class FanoutPath:
    """Which send path runs, and why (e.g. "native unavailable: <import error>")."""

    name: str
    reason: str

    @property
    def native(self) -> bool:
        return self.name == NATIVE


# (srtp_t address, socket object, struct sockaddr bytes, sequence-number offset: a viewer
# that switched renditions keeps its own numbering, media/viewer_link.py)
Target = tuple[int, Any, bytes, int]


class NativeSender:
    """The loaded extension and the srtp_protect it calls."""

    def __init__(self, module: ModuleType, protect: int) -> None:
        self._module = module
        self._protect = protect

    def send(self, packets: Sequence[bytes],
             targets: Sequence[Target]) -> list[tuple[int, int, int]]:
        """Protect and send `packets` to every target; the (index, sent, errno) of each
        target not fully served (errno EBADF: socket closed; negative: libsrtp status)."""
        return self._module.send_frame(self._protect, packets, targets)  # type: ignore[no-any-return]

    def sockaddr(self, address: tuple[Any, ...]) -> bytes:
        """The struct sockaddr for a (host, port, ...) address."""
        return self._module.sockaddr(address[0], address[1])  # type: ignore[no-any-return]

    def counters(self) -> dict[str, Any]:
        """Syscalls made so far by kind (GSO sendmsg, sendmmsg) and whether GSO is on."""
        return self._module.counters()  # type: ignore[no-any-return]

    def set_gso(self, on: bool) -> None:
        self._module.set_gso(on)


def load_native() -> tuple[NativeSender | None, str]:
    """The native sender, or None and why it cannot run here."""
    try:
        module = importlib.import_module("media._fastpath")
    except ImportError as exc:
        return None, (f"native unavailable: {exc} "
                      "(built by pip install; needs gcc and python3-dev)")
    if not getattr(module, "SEQ_OFFSET", 0):  # a build from before renditions
        return None, ("native unavailable: media/_fastpath is an older build without "
                      "per-viewer sequence offsets; rebuild it (pip install -e .)")
    try:
        protect, signature = aiortc_private.srtp_protect_function()
    except Exception as exc:  # pylibsrtp without the symbol, or another binding
        return None, f"native unavailable: no srtp_protect in pylibsrtp ({exc})"
    if signature != LIBSRTP2_PROTECT:
        return None, (f"native unavailable: pylibsrtp's srtp_protect is {signature!r}, "
                      "not libsrtp 2's (ctx, buffer, int *len)")
    return NativeSender(module, protect), "native: C SRTP protect + sendmmsg/UDP GSO per viewer"


def choose_path(requested: str = NATIVE) -> tuple[FanoutPath, NativeSender | None]:
    """The path to run for GOLIVE_FANOUT=`requested`: native falls back to python (with
    the reason) when the extension is not built or pylibsrtp's libsrtp is not version 2."""
    if requested not in PATHS:
        raise ValueError(f"fan-out path must be one of {', '.join(PATHS)}, got {requested!r}")
    if requested == PYTHON:
        return FanoutPath(PYTHON, "python: chosen by GOLIVE_FANOUT=python"), None
    sender, reason = load_native()
    if sender is None:
        return FanoutPath(PYTHON, reason), None
    return FanoutPath(NATIVE, reason), sender


_chosen: dict[str, tuple[FanoutPath, NativeSender | None]] = {}


def resolve(requested: str = NATIVE) -> tuple[FanoutPath, NativeSender | None]:
    """choose_path(), loaded once per process and requested value."""
    if requested not in _chosen:
        _chosen[requested] = choose_path(requested)
    return _chosen[requested]
