"""The canary: every private attribute golive reaches in a library, on real objects.

One test per attribute, named for it, so an upgrade that renames one fails with its
name (the adapters already refuse to import; this proves the check itself and the
objects' real shape). The whole file runs well under a second.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pylibsrtp
import pytest
import socketio
from aiohttp.web_ws import WebSocketResponse
from aiortc import RTCCertificate, RTCConfiguration, RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import RemoteStreamTrack, TimestampMapper
from aiortc.rtp import RtpPacket
from engineio import AsyncServer as EioServer
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket

from media import aioice_private, aiortc_private
from media.library_privates import IncompatibleLibrary, Private, parse_version, require
from signaling import aiohttp_private, engineio_private, socketio_private

ADAPTERS = (aiortc_private, aioice_private, engineio_private, aiohttp_private, socketio_private)
ALL = [(adapter, p) for adapter in ADAPTERS for p in adapter.PRIVATES]
REPO = Path(__file__).resolve().parents[1]


async def real_objects() -> dict[type, Any]:
    """One real instance of every class an adapter names, built without any network."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver("video")
    dtls = transceiver.sender.transport
    eio = EioServer(async_mode="aiohttp")
    objects: dict[type, Any] = {
        type(dtls): dtls,
        type(dtls.transport): dtls.transport,
        type(dtls.transport.iceGatherer): dtls.transport.iceGatherer,
        type(transceiver.sender): transceiver.sender,
        type(transceiver.receiver): transceiver.receiver,
        RemoteStreamTrack: RemoteStreamTrack(kind="video"),
        TimestampMapper: TimestampMapper(),
        JitterBuffer: JitterBuffer(capacity=16),
        type(aiortc_private.ice_connection(dtls)): aiortc_private.ice_connection(dtls),
        type(eio).__mro__[1]: eio,  # engineio.base_server.BaseServer
        eio_aiohttp.WebSocket: eio_aiohttp.WebSocket(lambda ws: None, eio),
        AsyncSocket: AsyncSocket(eio, "sid"),
        WebSocketResponse: WebSocketResponse(),
        socketio.AsyncServer: socketio.AsyncServer(async_mode="aiohttp"),
        pylibsrtp.Session: pylibsrtp.Session(),
        RTCCertificate: RTCCertificate.generateCertificate(),
    }
    objects["close"] = pc.close
    return objects


@pytest.mark.parametrize(("adapter", "private"), ALL,
                         ids=[f"{a.__name__.split('.')[-1]}:{p.label}" for a, p in ALL])
async def test_private_attribute_exists_on_a_real_object(adapter: Any, private: Private) -> None:
    objects = await real_objects()
    try:
        owner = next((obj for cls, obj in objects.items()
                      if isinstance(cls, type) and issubclass(cls, private.owner)), None)
        assert owner is not None, f"no real object built for {private.owner}"
        if private.name == "_data":  # set on packets by the receiver, read by the buffer
            buffer = JitterBuffer(capacity=4)
            packet = RtpPacket(sequence_number=1, timestamp=9, marker=1, payload=b"x")
            aiortc_private.set_depayloaded(packet, b"frame")
            buffer.add(packet)
            follower = RtpPacket(sequence_number=2, timestamp=10, payload=b"y")
            aiortc_private.set_depayloaded(follower, b"next")
            _, frame = buffer.add(follower)
            assert frame is not None and frame.data == b"frame", f"{private.label} is not read"
        else:
            assert hasattr(owner, private.attribute), (
                f"{private.label} is gone from {adapter.__name__.split('.')[-1]}'s library "
                f"(used by {private.used_by})")
    finally:
        await objects["close"]()


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
def test_pyproject_bounds_match_the_adapter(adapter: Any) -> None:
    """pyproject.toml's range for the library is the adapter's supported range."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    distribution = {"aiortc_private": "aiortc", "aioice_private": "aioice",
                    "engineio_private": "python-engineio", "aiohttp_private": "aiohttp",
                    "socketio_private": "python-socketio"}[adapter.__name__.split(".")[-1]]
    low, below = adapter.SUPPORTED
    assert f"{distribution}>={low},<{below}" in deps


def test_a_missing_private_stops_the_import_naming_it() -> None:
    class Lib:
        def __init__(self) -> None:
            self._kept = 1

    ok = Private(Lib, "_kept", True, "here")
    gone = Private(Lib, "_renamed", True, "golive.somewhere")
    method = Private(Lib, "_hook", False, "golive.elsewhere")
    assert require("aiohttp", "0", "999", (ok,))
    with pytest.raises(IncompatibleLibrary) as err:
        require("aiohttp", "0", "999", (ok, gone, method))
    text = str(err.value)
    assert "Lib._renamed" in text and "Lib._hook" in text and "Lib._kept" not in text
    assert "golive.somewhere" in text and ">=0,<999" in text


def test_a_version_out_of_range_stops_the_import_naming_the_range() -> None:
    with pytest.raises(IncompatibleLibrary) as err:
        require("aiohttp", "0", "1", aiohttp_private.PRIVATES)
    assert ">=0,<1" in str(err.value) and "WebSocketResponse._writer" in str(err.value)
    with pytest.raises(IncompatibleLibrary, match="not installed"):
        require("no-such-distribution-golive", "0", "1", ())


def test_name_mangled_privates_are_looked_up_mangled() -> None:
    sender_ntp = next(p for p in aiortc_private.PRIVATES if p.name == "__ntp_timestamp")
    assert sender_ntp.attribute == "_RTCRtpSender__ntp_timestamp"
    assert parse_version("4.15.1rc1") == (4, 15, 1) and parse_version("1.16") == (1, 16)
