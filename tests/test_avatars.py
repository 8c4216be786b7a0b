"""Profile photos: the checks as plain functions, the re-encoding with real Pillow, and
PUT /api/me/avatar and the served photo through the real server with bad files: not an
image, a 50 MB body, a decompression bomb, an SVG with script."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from redis.asyncio import Redis

from engine.avatars import (
    SIZE,
    check_pixels,
    check_upload,
    reencode,
    sniff,
    square_box,
)
from engine.errors import DomainError, ErrorCode
from tests.support.images import jpeg_with_gps
from tests.support.peers import register
from tests.support.state import snapshot

SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
       b'<script>alert(1)</script></svg>')


def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims width x height pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


def refused(fn: Any, *args: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(DomainError) as err:
        fn(*args, **kw)
    return err.value.code.value, str(err.value.details.get("reason", ""))


def test_only_jpeg_png_and_webp_by_their_first_bytes() -> None:
    assert sniff(jpeg_with_gps()) == "jpeg"
    assert sniff(png_claiming(2, 2)) == "png"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    for bad in (SVG, b"GIF89a....", b"hello", b"\x00" * 64):
        assert sniff(bad) is None
        assert refused(check_upload, bad) == ("invalid", "not_an_image")
    assert refused(check_upload, b"") == ("invalid", "")
    assert refused(check_upload, b"\xff\xd8\xff" + b"\x00" * 100, max_bytes=50) == (
        "invalid", "too_large")


def test_pixels_and_the_square() -> None:
    check_pixels(8000, 5000)
    assert refused(check_pixels, 50_000, 50_000) == ("invalid", "too_many_pixels")
    assert refused(check_pixels, 0, 10) == ("invalid", "not_an_image")
    assert square_box(640, 480) == (80, 0, 560, 480)
    assert square_box(300, 500) == (0, 100, 300, 400)


def test_reencoded_photos_are_square_webp_with_no_metadata() -> None:
    out = reencode(jpeg_with_gps())
    assert sniff(out) == "webp"
    with Image.open(io.BytesIO(out)) as img:
        assert img.size == (SIZE, SIZE) and img.format == "WEBP"
        assert not img.getexif() and "exif" not in img.info and "icc_profile" not in img.info
    assert b"SpyCam" not in out
    # a transparent PNG keeps its transparency
    rgba = io.BytesIO()
    Image.new("RGBA", (100, 300), (0, 0, 0, 0)).save(rgba, "PNG")
    with Image.open(io.BytesIO(reencode(rgba.getvalue()))) as img:
        assert img.size == (SIZE, SIZE) and img.mode == "RGBA"


def test_a_bomb_and_broken_files_are_refused_before_decoding() -> None:
    assert refused(reencode, png_claiming(50_000, 50_000)) == ("invalid", "too_many_pixels")
    assert refused(reencode, png_claiming(7_000, 7_000)) == ("invalid", "too_many_pixels")
    assert refused(reencode, jpeg_with_gps()[:200]) == ("invalid", "not_an_image")
    assert refused(reencode, b"\x89PNG\r\n\x1a\n" + b"junk" * 10) == ("invalid", "not_an_image")


async def test_upload_serve_and_refuse_over_http(client: Any, redis: Redis,
                                                 redis_url: str) -> None:
    ann = await register(client, "ann")
    auth = {"Authorization": f"Bearer {ann.token}"}
    resp = await client.put("/api/me/avatar", data=jpeg_with_gps(), headers={
        **auth, "Content-Type": "image/jpeg"})
    body = await resp.json()
    assert resp.status == 200, body
    url = body["user"]["avatar"]
    assert url.startswith(f"/avatars/{ann.id}/") and url.endswith(".webp")
    photo = await client.get(url)
    assert photo.status == 200 and photo.content_type == "image/webp"
    assert photo.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    data = await photo.read()
    assert sniff(data) == "webp" and b"SpyCam" not in data
    again = await client.get(url, headers={"If-None-Match": photo.headers["ETag"]})
    assert again.status == 304
    profile = await (await client.get("/api/users/ann")).json()
    assert profile["user"]["avatar"] == url

    # bad files: refused with a clear error; nothing stored changes; the server stays up
    before = await snapshot(redis_url)
    big = b"\xff\xd8\xff" + b"\x00" * (50 * 1024 * 1024)
    cases = [(big, "too_large"), (SVG, "not_an_image"), (b"just text", "not_an_image"),
             (png_claiming(50_000, 50_000), "too_many_pixels"), (b"", "")]
    for payload, reason in cases:
        resp = await client.put("/api/me/avatar", data=payload, headers={
            **auth, "Content-Type": "image/png"})
        error = (await resp.json())["error"]
        assert resp.status == 400 and error["code"] == "invalid", error
        assert error.get("reason", "") == reason and error["field"] == "avatar", error
    assert await snapshot(redis_url) == before
    assert (await client.get("/healthz")).status == 200
    resp = await client.put("/api/me/avatar", data=jpeg_with_gps())
    assert resp.status == 401
    # a new photo is a new URL; the old one is gone; removing it brings the letter back
    resp = await client.put("/api/me/avatar", data=_png(), headers=auth)
    new_url = (await resp.json())["user"]["avatar"]
    assert new_url != url and (await client.get(url)).status == 404
    for bad in ("/avatars/nothex/0000000000000000.webp", f"/avatars/{ann.id}/xyz.webp"):
        assert (await client.get(bad)).status == 404
    # uploads are rate limited per user (each is a decode): past a burst of 10, a wait
    statuses = [(await client.put("/api/me/avatar", data=b"x", headers=auth)).status
                for _ in range(4)]
    assert statuses[:2] == [400, 400] and statuses[-1] == 429, statuses
    resp = await client.put("/api/me/avatar", data=_png(), headers=auth)
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "rate_limited"
    resp = await client.delete("/api/me/avatar", headers=auth)
    assert "avatar" not in (await resp.json())["user"]
    assert (await client.get(new_url)).status == 404


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 200, 90)).save(out, "PNG")
    return out.getvalue()


# A 30x20 WebP with EXIF orientation 3 (upside down) whose tag 0x010e (text) was mutated to
# 0x013d, a tag Pillow writes as numbers: ImageOps.exif_transpose, rewriting the EXIF,
# raised struct.error (a 500 on PUT /api/me/avatar). Found by fuzzing reencode.
WEBP_ODD_EXIF = bytes.fromhex(
    "52494646aa00000057454250565038580a000000080000001d00001300005650382026000000d002009d01"
    "2a1e0014003e6d349647a4232221280800800d896900003da3a000fefb78c00000455849465e0000004d4d"
    "002a000000080003013d0002000000050000003201120003000000010003000087690004000000010000"
    "003800000000646573630000000190030002000000140000004a00000000323032303a30313a3031203030"
    "3a30303a303000")


def test_a_photo_with_an_exif_tag_pillow_cannot_write_is_read_upright() -> None:
    out = reencode(WEBP_ODD_EXIF)
    with Image.open(io.BytesIO(out)) as img:
        assert img.format == "WEBP" and img.size == (SIZE, SIZE)
        assert not img.getexif()


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_every_exif_orientation_is_turned_upright(orientation: int) -> None:
    """reencode turns a photo as Pillow's own exif_transpose would (the oracle): a 40x20
    photo, red left and blue right, stored with each EXIF orientation."""
    from PIL import ImageOps

    img = Image.new("RGB", (40, 24), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 12))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    with Image.open(io.BytesIO(buf.getvalue())) as stored:
        upright = ImageOps.exif_transpose(stored).convert("RGB")
    expected = upright.crop(square_box(*upright.size)).resize((SIZE, SIZE))
    with Image.open(io.BytesIO(reencode(buf.getvalue()))) as out:
        got = out.convert("RGB")
        for point in ((8, 8), (SIZE - 9, 8), (8, SIZE - 9), (SIZE - 9, SIZE - 9)):
            want, have = expected.getpixel(point), got.getpixel(point)
            assert (want[0] > want[2]) == (have[0] > have[2]), (orientation, point, want, have)


def _seed_images() -> list[bytes]:
    """Small sound photos of every kind, some with EXIF, to mutate."""
    seeds = []
    for fmt in ("PNG", "JPEG", "WEBP"):
        for orientation in (None, 6):
            buf = io.BytesIO()
            kw: dict[str, Any] = {}
            if orientation:
                exif = Image.Exif()
                exif[0x0112] = orientation
                exif[0x010E] = "desc"
                kw["exif"] = exif.tobytes()
            Image.new("RGB", (30, 20), (200, 30, 60)).save(buf, fmt, **kw)
            seeds.append(buf.getvalue())
    return seeds


SEED_IMAGES = _seed_images()


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's "Corrupt EXIF data": expected
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEED_IMAGES), st.lists(
    st.tuples(st.integers(0, 10**6), st.sampled_from(["set", "cut", "add", "end"]),
              st.binary(min_size=1, max_size=4)), min_size=1, max_size=6))
def test_mutated_photos_are_read_or_refused_invalid(seed: bytes, edits: list[Any]) -> None:
    """Any bytes that sniff as a photo: a re-encoded photo or `invalid`, never another
    exception (a 500 at PUT /api/me/avatar)."""
    data = bytearray(seed)
    for at, how, chunk in edits:
        if len(data) < 16:
            break
        at %= len(data)
        if how == "set":
            data[at:at + len(chunk)] = chunk
        elif how == "cut":
            del data[at:at + len(chunk) * 4]
        elif how == "add":
            data[at:at] = chunk
        else:
            data = data[:max(16, at)]
    try:
        out = reencode(bytes(data))
    except DomainError as exc:
        assert exc.code is ErrorCode.INVALID
    else:
        assert out[:4] == b"RIFF"
