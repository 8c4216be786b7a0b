"""Image files for the photo tests."""

from __future__ import annotations

import io

from PIL import Image


def jpeg_with_gps(width: int = 640, height: int = 480) -> bytes:
    """A real JPEG carrying EXIF (a camera make, a GPS block, orientation 6: rotated)."""
    img = Image.new("RGB", (width, height), (200, 30, 60))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"                # Make
    exif[0x0112] = 6                       # Orientation: rotate 90 clockwise to show
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}   # GPSInfo
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()
