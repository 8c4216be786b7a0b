"""SDP checks at the edge, and the codec preferences for the server's offers.

aiortc's SDP parser accepts almost anything (text that is not SDP parses to a session with
no media), so offers and answers are checked here first, with precise messages, before
any RTCPeerConnection exists.
"""

from __future__ import annotations

from aiortc import RTCRtpSender, sdp
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from media.encoder import VideoCodecName
from media.errors import invalid

MAX_SDP_BYTES = 64 * 1024  # a browser offer with audio+video is 4-8 KB
_MIME = {"vp8": "video/vp8", "h264": "video/h264"}
_INGEST_VIDEO = {"video/vp8", "video/h264"}  # what aiortc can decode
_INGEST_AUDIO = {"audio/opus"}


def _parse(text: object, what: str) -> sdp.SessionDescription:
    if not isinstance(text, str):
        raise invalid(f"{what} must be SDP text, got {type(text).__name__}")
    if len(text) > MAX_SDP_BYTES:
        raise invalid(f"{what} is longer than {MAX_SDP_BYTES} bytes")
    if not text.lstrip().startswith("v=0"):
        raise invalid(f"{what} is not SDP (it must start with v=0)")
    try:
        description = sdp.SessionDescription.parse(text)
    except (ValueError, KeyError, IndexError, TypeError, AssertionError) as exc:
        # aiortc asserts a candidate line's field count (an AssertionError)
        raise invalid(f"{what} does not parse: {exc or 'a malformed line'}") from None
    if not description.media:
        raise invalid(f"{what} has no media sections")
    for media in description.media:
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise invalid(f"{what} lacks ICE credentials in its {media.kind} section")
        if media.dtls is None or not media.dtls.fingerprints:
            raise invalid(f"{what} lacks a DTLS fingerprint in its {media.kind} section")
    return description


def check_publisher_offer(text: object) -> None:
    """A creator's offer: exactly one video (VP8/H.264) and one audio (Opus) section, both sending.

    Exactly one of each, because every incoming track must be consumed: aiortc decodes
    incoming video into an unbounded queue, and an unexpected extra track would grow it.
    """
    description = _parse(text, "offer")
    kinds = [m.kind for m in description.media]
    if sorted(kinds) != ["audio", "video"]:
        raise invalid(f"offer must have one audio and one video section, got {kinds}")
    for media in description.media:
        mimes = {c.mimeType.lower() for c in media.rtp.codecs}
        usable = _INGEST_VIDEO if media.kind == "video" else _INGEST_AUDIO
        if not mimes & usable:
            raise invalid(
                f"offer's {media.kind} has no usable codec (need one of "
                f"{', '.join(sorted(usable))}; got {', '.join(sorted(mimes)) or 'none'})"
            )
        if (media.direction or "sendrecv") not in ("sendonly", "sendrecv"):
            raise invalid(f"offer's {media.kind} section does not send ({media.direction})")


def check_viewer_answer(text: object, codec: VideoCodecName) -> None:
    """A viewer's answer to our offer: it must accept the room's video codec and Opus."""
    description = _parse(text, "answer")
    for media in description.media:
        first = media.rtp.codecs[0].mimeType.lower() if media.rtp.codecs else None
        want = _MIME[codec] if media.kind == "video" else "audio/opus"
        if first != want:
            raise invalid(f"answer's {media.kind} codec is {first}, the room sends {want}")
        if (media.direction or "sendrecv") not in ("recvonly", "sendrecv"):
            raise invalid(f"answer's {media.kind} section does not receive ({media.direction})")


def check_player_offer(text: object) -> None:
    """A WHEP player's offer (the player offers, the server answers): one video and one
    audio section, both receiving (offer_for_codec then checks the codecs)."""
    description = _parse(text, "offer")
    kinds = sorted(m.kind for m in description.media)
    if kinds != ["audio", "video"]:
        raise invalid(f"offer must have one audio and one video section, got {kinds}")
    for media in description.media:
        if (media.direction or "sendrecv") not in ("recvonly", "sendrecv"):
            raise invalid(f"offer's {media.kind} section does not receive ({media.direction})")


def offer_for_codec(offer_sdp: str, codec: VideoCodecName) -> str:
    """A player's offer with only the room's codecs left in it: the room's video codec
    (and RTX for it) and Opus. An answering aiortc peer picks the offer's first codec it
    knows and ignores setCodecPreferences, so an offer listing H.264 before VP8 would get
    the room's VP8 labelled H.264; the room encodes once, in one codec. `invalid` when
    the offer lacks the room's codec."""
    want = {"video": _MIME[codec], "audio": "audio/opus"}
    sections = offer_sdp.replace("\r\n", "\n").split("\nm=")
    out = [sections[0]]
    for section in sections[1:]:
        lines = ("m=" + section).split("\n")
        kind = lines[0][2:].split(" ", 1)[0]
        if kind not in want:
            out.append("\n".join(lines)[2:])
            continue
        names = {}  # payload type -> codec mime
        apt = {}  # rtx payload type -> the payload type it repeats
        for line in lines:
            if line.startswith("a=rtpmap:"):
                pt, _, rest = line[9:].partition(" ")
                names[pt] = f"{kind}/{rest.split('/', 1)[0]}".lower()
            elif line.startswith("a=fmtp:") and "apt=" in line:
                pt, _, params = line[7:].partition(" ")
                for param in params.split(";"):
                    name, _, value = param.strip().partition("=")
                    if name == "apt":
                        apt[pt] = value
        keep = {pt for pt, name in names.items() if name == want[kind]}
        if not keep:
            raise invalid(f"offer's {kind} has no {want[kind]} (the room sends "
                          f"{want[kind]}; got {', '.join(sorted(set(names.values()))) or 'none'})")
        keep |= {pt for pt, base in apt.items() if base in keep and names.get(pt) == f"{kind}/rtx"}
        fields = lines[0].split(" ")
        kept = [" ".join(fields[:3] + [pt for pt in fields[3:] if pt in keep])]
        for line in lines[1:]:
            if line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
                pt = line.split(":", 1)[1].split(" ", 1)[0]
                if pt != "*" and pt not in keep:
                    continue
            kept.append(line)
        out.append("\n".join(kept)[2:])
    return "\nm=".join(out).replace("\n", "\r\n")


# What a viewer would feed back for bandwidth estimation: REMB (rtcp-fb goog-remb) and the
# abs-send-time header extension it is computed from. The room encodes once for every
# viewer and never adapts to one, so that feedback is pure cost: aiortc viewers sent
# ~6 REMBs a second each (a receiver sends one whenever its estimate moves), and their
# RTCP was ~45% of the server's CPU with 100 viewers of a 320x240 room (process-CPU
# cProfile, issue 14). The creator's ingest keeps both: its encoder does adapt.
_BANDWIDTH_FEEDBACK = ("goog-remb", "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")


def without_bandwidth_feedback(offer_sdp: str, keep_video: bool = False) -> str:
    """The offer without REMB feedback and the abs-send-time extension (their a= lines);
    with `keep_video`, the video section keeps both: a room with renditions may ask its
    viewers for REMB, a bandwidth estimate its rendition rule uses (media/abr.py)."""
    kept = []
    kind = None
    for line in offer_sdp.split("\r\n"):
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        if (line.startswith(("a=rtcp-fb:", "a=extmap:"))
                and line.rsplit(" ", 1)[-1] in _BANDWIDTH_FEEDBACK
                and not (keep_video and kind == "video")):
            continue
        kept.append(line)
    return "\r\n".join(kept)


def offered_extension_id(offer_sdp: str, kind: str, uri: str) -> int | None:
    """The id the offer gives header extension `uri` in its `kind` section, or None."""
    section = None
    for line in offer_sdp.split("\r\n"):
        if line.startswith("m="):
            section = line[2:].split(" ", 1)[0]
        elif section == kind and line.startswith("a=extmap:"):
            mapping, _, rest = line[len("a=extmap:"):].partition(" ")
            if rest.split(" ", 1)[0] == uri:
                try:
                    return int(mapping.split("/", 1)[0])  # "4" or "4/recvonly"
                except ValueError:
                    return None
    return None


def with_transport_cc(answer_sdp: str, extension_id: int, uri: str) -> str:
    """The answer with transport-wide congestion control in its video section: the
    extension under the offer's id, and `a=rtcp-fb:PT transport-cc` for each video
    codec but RTX (aiortc answers neither: it has no transport-cc of its own; the
    ingest sends the feedback itself, media/twcc.py)."""
    out: list[str] = []
    section = None
    extmap_added = False
    lines = answer_sdp.split("\r\n")
    for index, line in enumerate(lines):
        if line.startswith("m="):
            section = line[2:].split(" ", 1)[0]
            extmap_added = False
        out.append(line)
        if section != "video":
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if (not extmap_added and (line.startswith("a=extmap:") or line.startswith("a=mid:"))
                and not following.startswith("a=extmap:")):
            out.append(f"a=extmap:{extension_id} {uri}")
            extmap_added = True
        elif line.startswith("a=rtpmap:") and "rtx/" not in line.lower():
            payload_type = line[len("a=rtpmap:"):].split(" ", 1)[0]
            out.append(f"a=rtcp-fb:{payload_type} transport-cc")
    return "\r\n".join(out)


def video_preferences(codec: VideoCodecName) -> list[RTCRtpCodecCapability]:
    """The room's video codec (every profile aiortc offers) plus RTX for retransmissions.

    Must be set on the OFFERING side: setCodecPreferences() on an answering aiortc peer is
    silently ignored (H.264 data went out labelled VP8, measured).
    """
    caps = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in caps if c.mimeType.lower() == _MIME[codec]] + [
        c for c in caps if c.mimeType.lower() == "video/rtx"
    ]


def audio_preferences() -> list[RTCRtpCodecCapability]:
    """Opus only: the room encodes Opus, and a sender negotiated to PCMU would mislabel it."""
    caps = RTCRtpSender.getCapabilities("audio").codecs
    return [c for c in caps if c.mimeType.lower() == "audio/opus"]
