"""WHIP and WHEP clients (RFC 9725; draft-ietf-wish-whep), on asyncio, aiohttp and aiortc.

Publish a test pattern to any WHIP endpoint (golive's: the studio shows the URL and key):

    client = WhipClient("https://golive.example/whip", "gls_...", *pattern_source())
    await client.publish()         # 201: live; the answer applied, media flowing
    ...
    await client.close()           # DELETE on the session URL: the live ends

Play a live from any WHEP endpoint (golive's: /whep/USERNAME; a session token optional):

    player = WhepClient("https://golive.example/whep/ann")
    await player.play()
    ... player.video_frames, player.last_video ...
    await player.close()           # DELETE: the player stops watching

Both follow the RFC's flow: an OPTIONS first whose `Link: <...>; rel="ice-server"` headers
name the ICE servers (TURN included, with the credential), then a POST of the whole offer
(aiortc gathers every candidate before it makes one: no trickle), `201 Created` with the
answer, a `Location` (resolved against the endpoint's URL) and an ETag; any other answer
raises WhipError with the status and the server's error code. Peer connections use the
max-bundle policy the RFC requires (one transport for audio and video).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av.video.frame import VideoFrame
from yarl import URL

SDP = "application/sdp"
HTTP_TIMEOUT_S = 30.0  # a POST waits for the server's ICE gathering (~0.1-2 s here)

__all__ = ["IceServerLink", "WhepClient", "WhipClient", "WhipError", "file_source",
           "parse_ice_links", "pattern_source"]


class WhipError(Exception):
    """The endpoint refused: `status` (HTTP), `code` (golive's stable error code, when it
    sent its JSON error body) and the message."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(f"HTTP {status}{f' {code}' if code else ''}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IceServerLink:
    """One ICE server from a `Link: <url>; rel="ice-server"` header."""

    url: str
    username: str | None = None
    credential: str | None = None


_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,=\s]+\s*(?:=\s*(?:"[^"]*"|[^;,]*))?)*)')
_PARAM = re.compile(r';\s*([^;,=\s]+)\s*(?:=\s*(?:"([^"]*)"|([^;,]*)))?')


def parse_ice_links(values: Sequence[str]) -> list[IceServerLink]:
    """The ICE servers in Link header values (several per value allowed, comma-separated
    as RFC 8288 writes them); links of another rel are skipped."""
    found = []
    for value in values:
        for match in _LINK.finditer(value):
            params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None
                                           else (m.group(3) or "").strip())
                      for m in _PARAM.finditer(match.group(2))}
            if params.get("rel", "").lower() != "ice-server":
                continue
            found.append(IceServerLink(match.group(1).strip(), params.get("username"),
                                       params.get("credential")))
    return found


def configuration(servers: Sequence[IceServerLink]) -> RTCConfiguration:
    """An aiortc configuration with these ICE servers and max-bundle (RFC 9725 4.2)."""
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=[s.url], username=s.username, credential=s.credential)
                    for s in servers],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


async def _refusal(resp: aiohttp.ClientResponse) -> WhipError:
    text = await resp.text(errors="replace")
    code = None
    message = text[:300] or resp.reason or ""
    if resp.content_type == "application/json":
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            error = (await resp.json())["error"]
            code, message = str(error["code"]), str(error["message"])
    return WhipError(resp.status, message, code)


class _Session:
    """What WHIP and WHEP share: the endpoint, the token, the HTTP exchange, the pc."""

    def __init__(self, url: str, token: str | None,
                 http: aiohttp.ClientSession | None, use_options: bool) -> None:
        self.url = url
        self.token = token
        self._http = http
        self._own_http = http is None
        self._use_options = use_options
        self.pc: RTCPeerConnection | None = None
        self.location: str | None = None
        self.etag: str | None = None
        self.ice_servers: list[IceServerLink] = []

    def _headers(self, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
        return self._http

    async def _options(self) -> None:
        """The ICE servers before the offer, if the endpoint names them (not required)."""
        if not self._use_options:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._client().options(self.url, headers=self._headers()) as resp:
                if resp.status < 300:
                    self.ice_servers = parse_ice_links(resp.headers.getall("Link", []))

    async def _exchange(self, offer: str) -> str:
        """POST the offer; the answer (201), with location and etag noted."""
        async with self._client().post(self.url, data=offer.encode(),
                                       headers=self._headers(**{"Content-Type": SDP})) as resp:
            if resp.status != 201:
                raise await _refusal(resp)
            if resp.content_type != SDP:
                raise WhipError(resp.status, f"the answer came as {resp.content_type}, "
                                             f"not {SDP}")
            location = resp.headers.get("Location")
            if not location:
                raise WhipError(resp.status, "the 201 had no Location header")
            self.location = str(URL(self.url).join(URL(location)))
            self.etag = resp.headers.get("ETag")
            answer = await resp.text()
            return answer

    async def _negotiate(self) -> None:
        assert self.pc is not None
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self._exchange(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def _delete(self) -> int | None:
        """DELETE the session (its status, None when there was none or it failed)."""
        location, self.location = self.location, None
        if location is None:
            return None
        try:
            async with self._client().delete(location, headers=self._headers()) as resp:
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _close(self) -> int | None:
        try:
            status = await self._delete()
        finally:
            if self.pc is not None:
                await self.pc.close()
            if self._own_http and self._http is not None:
                await self._http.close()
                self._http = None
        return status


class WhipClient(_Session):
    """Publishes one video and one audio track to a WHIP endpoint."""

    def __init__(self, url: str, token: str, video: MediaStreamTrack, audio: MediaStreamTrack,
                 *, video_codec: str | None = None, http: aiohttp.ClientSession | None = None,
                 use_options: bool = True) -> None:
        super().__init__(url, token, http, use_options)
        self.video = video
        self.audio = audio
        self.video_codec = video_codec  # "vp8" / "h264": offer only that one; None: both

    async def publish(self) -> None:
        """OPTIONS (ICE servers), the offer, 201 and its answer; WhipError on a refusal
        (the pc is closed then)."""
        await self._options()
        self.pc = RTCPeerConnection(configuration(self.ice_servers))
        video = self.pc.addTransceiver(self.video, direction="sendonly")
        self.pc.addTransceiver(self.audio, direction="sendonly")
        if self.video_codec:
            mime = f"video/{self.video_codec}".lower()
            video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                       if c.mimeType.lower() in (mime, "video/rtx")])
        try:
            await self._negotiate()
        except BaseException:
            await self.pc.close()
            raise

    async def close(self) -> int | None:
        """DELETE the session (the live ends), close the pc and stop the tracks. The
        DELETE's status (None if none was sent or it failed). Idempotent."""
        try:
            return await self._close()
        finally:
            self.video.stop()
            self.audio.stop()


class WhepClient(_Session):
    """Plays a WHEP endpoint's stream: decodes every frame, counts them."""

    def __init__(self, url: str, token: str | None = None, *,
                 on_video: Callable[[VideoFrame], None] | None = None,
                 http: aiohttp.ClientSession | None = None, use_options: bool = True) -> None:
        super().__init__(url, token, http, use_options)
        self.video_frames = 0
        self.audio_frames = 0
        self.last_video: VideoFrame | None = None
        self.ended: set[str] = set()  # kinds whose track ended (the session or live ended)
        self._on_video = on_video
        self._readers: list[asyncio.Task[None]] = []  # owned: close() cancels and awaits

    async def play(self) -> None:
        """OPTIONS (ICE servers), a recvonly offer, 201 and its answer; WhipError on a
        refusal (the pc is closed then)."""
        await self._options()
        self.pc = RTCPeerConnection(configuration(self.ice_servers))
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.on("track", self._on_track)
        try:
            await self._negotiate()
        except BaseException:
            await self.pc.close()
            raise

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        # aiortc queues decoded frames without bound until read: both tracks are drained
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    assert isinstance(frame, VideoFrame)
                    self.video_frames += 1
                    self.last_video = frame
                    if self._on_video is not None:
                        self._on_video(frame)
                else:
                    self.audio_frames += 1
        except MediaStreamError:
            self.ended.add(track.kind)

    async def close(self) -> int | None:
        """DELETE the session, close the pc, cancel and await the readers. Idempotent."""
        try:
            return await self._close()
        finally:
            readers, self._readers = self._readers, []
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)


def pattern_source(width: int = 640, height: int = 360, fps: float = 30.0
                ) -> tuple[MediaStreamTrack, MediaStreamTrack]:
    """A moving test pattern (frame numbers drawn in) and a 440 Hz tone."""
    from media.synthetic import SyntheticVideoTrack, ToneAudioTrack

    return SyntheticVideoTrack(width, height, fps), ToneAudioTrack()


def file_source(path: str, loop: bool = True) -> tuple[MediaStreamTrack, MediaStreamTrack]:
    """The video and audio of a media file (both needed), looped by default."""
    from aiortc.contrib.media import MediaPlayer

    player = MediaPlayer(path, loop=loop)
    if player.video is None or player.audio is None:
        raise ValueError(f"{path} needs both a video and an audio stream")
    return player.video, player.audio
