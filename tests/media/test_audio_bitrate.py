"""A room's Opus bitrate (GOLIVE_AUDIO_BITRATE): one stream for every viewer, so on a
300 kbit/s link it is a third of what the link carries at 64 kbit/s (bench abr, README)."""

from __future__ import annotations

import fractions
import math

import numpy as np
import pytest
from av.audio.frame import AudioFrame

from media import MediaError, MediaErrorCode
from media.encoder import AudioEncoder


def one_second_of_opus(bitrate: int) -> int:
    """Bytes of Opus for 1 s of a 440 Hz tone (with a little noise) at `bitrate`."""
    encoder = AudioEncoder(bitrate)
    rng = np.random.default_rng(1)
    total = 0
    for n in range(50):
        t = (np.arange(960) + n * 960) / 48000
        wave = 0.2 * 32767 * np.sin(2 * math.pi * 440 * t) + rng.normal(0, 300, 960)
        frame = AudioFrame.from_ndarray(wave.astype(np.int16).reshape(1, -1), format="s16",
                                        layout="mono")
        frame.sample_rate = 48000
        frame.pts, frame.time_base = n * 960, fractions.Fraction(1, 48000)
        total += sum(packet.size for packet in encoder.encode(frame))
    return total


def test_the_room_audio_bitrate_is_what_opus_sends():
    low, high = one_second_of_opus(32_000), one_second_of_opus(64_000)
    assert low * 8 <= 32_000 * 1.2, low
    assert low < high * 0.75, (low, high)


@pytest.mark.parametrize("bad", [0, 5_999, 510_001, "32000", 32000.0])
async def test_a_bad_audio_bitrate_is_invalid(harness, bad):
    with pytest.raises(MediaError) as caught:
        harness.room(audio_bitrate=bad)
    assert caught.value.code is MediaErrorCode.INVALID
