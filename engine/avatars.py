"""Profile photos: an upload checked, re-encoded and cropped here, stored in Redis.

Only JPEG, PNG and WebP are taken, known by their first bytes (never by a name or a
declared type: an SVG, which can carry script, is none of them), at most
UPLOAD_MAX_BYTES, and at most PIXELS_MAX pixels as the file's header declares them,
checked before a single pixel is decoded (a 50,000 x 50,000 "decompression bomb" is a
few kB of PNG and 7.5 GB once decoded). What is kept is never the upload: the image
is decoded once, turned upright (EXIF orientation), cropped to its centre square,
scaled to SIZE px and written anew as WebP, so no metadata of the upload (EXIF, GPS,
ICC, comments) survives. The result is ~5-20 kB, kept in Redis under the account
(keys.avatar, base64) with a version (the bytes' digest) that names its URL, so a new photo
is a new URL and an old one can be cached for good.

Decoding runs in a worker thread (asyncio.to_thread), at most DECODES_AT_ONCE at a time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import struct
import warnings
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.errors import DomainError, ErrorCode, invalid, not_found

UPLOAD_MAX_BYTES = 5 * 1024 * 1024    # a phone photo is 2-4 MB
PIXELS_MAX = 40_000_000               # 40 MP: a phone's largest; decoded RGB ~120 MB
SIZE = 256                            # the stored square, px (shown at 30-120 px)
QUALITY = 82                          # WebP quality: ~10 kB a face at 256 px
DECODES_AT_ONCE = 2                   # one per core of the smallest host

_KINDS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def sniff(data: bytes) -> str | None:
    """The image kind by its first bytes (jpeg, png, webp), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_upload(data: bytes, max_bytes: int = UPLOAD_MAX_BYTES) -> str:
    """The kind of an upload that may be decoded; `invalid` (field `avatar`) otherwise."""
    if not data:
        raise invalid("choose a photo to upload", field="avatar")
    if len(data) > max_bytes:
        raise invalid(f"a photo is at most {max_bytes // (1024 * 1024)} MB", field="avatar",
                      reason="too_large", max_bytes=max_bytes)
    kind = sniff(data)
    if kind is None:
        raise invalid("a photo must be a JPEG, PNG or WebP image", field="avatar",
                      reason="not_an_image")
    return kind


def check_pixels(width: int, height: int, pixels_max: int = PIXELS_MAX) -> None:
    """A declared size worth decoding: `invalid` (reason too_many_pixels) beyond it."""
    if width < 1 or height < 1:
        raise invalid("this image has no pixels", field="avatar", reason="not_an_image")
    if width * height > pixels_max:
        raise invalid(f"a photo is at most {pixels_max // 1_000_000} megapixels",
                      field="avatar", reason="too_many_pixels")


def square_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The centred square crop (left, top, right, bottom) of a width x height image."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
ORIENTATION_TAG = 0x0112
_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
            6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


def _upright(img: Any) -> Any:
    """The image turned as its EXIF orientation says. Not ImageOps.exif_transpose: it
    writes the EXIF back (to drop the orientation tag), and a tag whose stored type Pillow
    cannot write (a 178-byte WebP: tag 0x013d stored as text) raised struct.error, a 500
    (found by fuzzing reencode). The stored photo keeps no EXIF, so none is written."""
    from PIL import Image

    method = _UPRIGHT.get(img.getexif().get(ORIENTATION_TAG))  # type: ignore[arg-type]
    return img.transpose(getattr(Image.Transpose, method)) if method else img


def reencode(data: bytes, *, size: int = SIZE, pixels_max: int = PIXELS_MAX) -> bytes:
    """The stored photo: the upload decoded, upright, centre-cropped, scaled to size x
    size and written anew as WebP, with none of the upload's metadata. Blocking (call
    it in a thread); `invalid` for anything that is not a sound image of an allowed kind."""
    from PIL import Image, UnidentifiedImageError

    kind = check_upload(data, max_bytes=len(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_KINDS[kind]]) as img:
                check_pixels(*img.size, pixels_max=pixels_max)   # from the header only
                img.load()
                upright = _upright(img)
                rgb = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
        square = rgb.crop(square_box(*rgb.size)).resize((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        square.save(out, "WEBP", quality=QUALITY, method=4)  # no exif=, no icc_profile=
        return out.getvalue()
    except DomainError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard, past ~89 MP: the same refusal as ours
        raise invalid(f"a photo is at most {pixels_max // 1_000_000} megapixels",
                      field="avatar", reason="too_many_pixels") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error) as exc:
        raise invalid("this file is not an image we can read", field="avatar",
                      reason="not_an_image") from exc


def version_of(webp: bytes) -> str:
    """The photo's version in its URL: 16 hex digits of its SHA-256."""
    return hashlib.sha256(webp).hexdigest()[:16]


class Avatars:
    """Set, read and remove profile photos."""

    def __init__(self, redis: Redis, *, decodes_at_once: int = DECODES_AT_ONCE) -> None:
        self._redis = redis
        self._decoding = asyncio.Semaphore(decodes_at_once)

    async def set(self, user_id: str, data: bytes) -> str:
        """Re-encode and store `data` as the user's photo; its new version."""
        check_upload(data)
        async with self._decoding:
            webp = await asyncio.to_thread(reencode, data)
        version = version_of(webp)
        if not await self._redis.exists(keys.user(user_id)):
            raise not_found("no such user")
        async with self._redis.pipeline(transaction=True) as pipe:
            # base64: the pool decodes replies as text (~14 kB for a ~10 kB photo)
            pipe.set(keys.avatar(user_id), base64.b64encode(webp).decode())
            pipe.hset(keys.user(user_id), "avatar", version)
            await pipe.execute()
        return version

    async def remove(self, user_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.avatar(user_id))
            pipe.hdel(keys.user(user_id), "avatar")
            removed, _ = await pipe.execute()
        return bool(removed)

    async def get(self, user_id: str, version: str) -> bytes:
        """The photo's bytes when `version` is the current one; `not_found` otherwise."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.user(user_id), "avatar")
            pipe.get(keys.avatar(user_id))
            current, data = await pipe.execute()
        if not current or current != version or data is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such photo")
        return base64.b64decode(data)


__all__ = ["Avatars", "check_pixels", "check_upload", "reencode", "sniff", "square_box",
           "version_of"]
