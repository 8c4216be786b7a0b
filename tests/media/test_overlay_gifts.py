"""Gift overlays in the media layer: keyed badges (combos update in place), sizes, the
"left" stack, the bounded waiting line, and a real aiortc viewer decoding a gift badge's
own colour where the layout put it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.overlay_draw import icon_png
from media import MediaError, Overlay, draw_overlays
from media.compositor import Compositor
from media.overlay import badge_scale, font_scale, overlay_layout
from media.synthetic import SyntheticVideoTrack


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def gift(text: str, *, key: str | None = None, size: int = 1, priority: int = 0,
         duration_s: float = 4.0, color: tuple[int, int, int] = (255, 30, 80)) -> Overlay:
    return Overlay(text=text, color=color, position="left", key=key, size=size,
                   priority=priority, duration_s=duration_s)


# ---- compositor: keys, stack and waiting line -----------------------------------------


def test_a_combo_updates_its_badge_in_place_and_restarts_its_time() -> None:
    clock = Clock()
    comp = Compositor(clock=clock, max_active=3)
    comp.add(gift("ann sent Rose x1", key="streak-a"))
    comp.add(gift("bob sent Lion x1", key="streak-b"))
    clock.now += 3
    comp.add(gift("ann sent Rose x2", key="streak-a"))
    assert [o.text for o in comp.active()] == ["ann sent Rose x2", "bob sent Lion x1"]
    clock.now += 2  # bob's badge is 5 s old: gone; ann's combo restarted its 4 s at x2
    assert [o.text for o in comp.active()] == ["ann sent Rose x2"]
    clock.now += 2.5
    assert comp.active() == []


def test_more_gifts_than_slots_wait_and_each_gets_its_full_time() -> None:
    clock = Clock()
    comp = Compositor(clock=clock, max_active=2, max_waiting=3)
    for name in ("a", "b", "c", "d"):
        comp.add(gift(f"{name} sent Rose x1", key=name))
    assert [o.key for o in comp.active()] == ["a", "b"] and comp.waiting == 2
    comp.add(gift("c sent Rose x5", key="c"))  # a combo of a waiting gift replaces it there
    assert comp.waiting == 2
    clock.now += 4
    assert [o.text for o in comp.active()] == ["c sent Rose x5", "d sent Rose x1"]
    clock.now += 3.9
    assert [o.key for o in comp.active()] == ["c", "d"]
    clock.now += 0.1
    assert comp.active() == [] and comp.dropped == 0


def test_a_full_waiting_line_drops_its_smallest_gift() -> None:
    comp = Compositor(clock=Clock(), max_active=1, max_waiting=2)
    comp.add(gift("showing", key="s", priority=1))
    comp.add(gift("lion", key="l", priority=29999))
    comp.add(gift("rose 1", key="r1", priority=1))
    comp.add(gift("rose 2", key="r2", priority=1))  # the line is full: the oldest rose goes
    comp.add(gift("galaxy", key="g", priority=1000))  # then the other rose
    assert comp.dropped == 2
    assert [o.key for o in comp._waiting] == ["l", "g"]


def test_bad_bounds_and_overlay_fields_are_refused() -> None:
    with pytest.raises(ValueError):
        Compositor(max_active=0)
    with pytest.raises(ValueError):
        Compositor(max_waiting=-1)
    for kwargs in ({"size": 0}, {"size": 4}, {"size": True}, {"key": ""}, {"key": "k" * 129},
                   {"priority": 1.5}):
        with pytest.raises(MediaError) as info:
            Overlay(text="x", color=(1, 2, 3), **kwargs)
        assert info.value.code == "invalid"


# ---- sizes and layout -----------------------------------------------------------------


def test_bigger_gifts_get_bigger_badges() -> None:
    assert [font_scale(360, s) for s in (1, 2, 3)] == [2, 3, 4]
    assert [font_scale(720, s) for s in (1, 2, 3)] == [4, 6, 8]
    icon = icon_png((255, 255, 255, 255))
    rects = []
    for size in (1, 2, 3):
        overlay = Overlay(text="ann x1", color=(255, 160, 0), image=icon, position="left",
                          size=size)
        [(_, rect)] = overlay_layout([overlay], 640, 360)
        rects.append(rect)
    assert rects[0].height < rects[1].height < rects[2].height
    assert rects[0].width < rects[1].width < rects[2].width
    assert [r.scale for r in rects] == [2, 3, 4]


def test_left_badges_stack_down_from_a_quarter_of_the_frame() -> None:
    overlays = [gift(f"user{i} sent Rose x1", size=1 + i % 3) for i in range(4)]
    placed = overlay_layout(overlays, 640, 360)
    assert len(placed) == 4
    rects = [rect for _, rect in placed]
    assert rects[0].y == 90 and all(r.x == 4 * badge_scale(360) for r in rects)
    for above, below in itertools.pairwise(rects):
        assert above.y + above.height < below.y
    assert rects[-1].y + rects[-1].height <= 360


def test_a_badge_too_wide_for_its_size_is_drawn_smaller_not_cut() -> None:
    long = gift("a_very_long_username_24c sent Universe x99", size=3)
    [(_, rect)] = overlay_layout([long], 640, 360)
    assert rect.scale < font_scale(360, 3) and rect.width <= 640 - 2 * 4 * badge_scale(360)


def test_a_gift_badge_draws_its_colour_icon_and_text() -> None:
    icon = icon_png((255, 255, 255, 255))
    color = (255, 30, 80)
    overlay = Overlay(text="ann sent Rose x3", color=color, image=icon, position="left",
                      size=2)
    frame = SyntheticVideoTrack(640, 360).make_frame(5)
    out = draw_overlays(frame, [overlay]).to_ndarray(format="rgb24").astype(int)
    [(_, rect)] = overlay_layout([overlay], 640, 360)
    badge = out[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
    pad = 3 * rect.scale
    padding = badge[2 : rect.height - 2, 1 : pad - 1]
    assert np.abs(padding - color).max() <= 3
    icon_area = badge[pad + 2 : rect.height - pad - 2, pad + 2 : pad + 2 * 7 * rect.scale - 2]
    assert (icon_area.min(axis=2) > 230).mean() > 0.5  # the white round icon
    text_area = badge[:, pad + 2 * 7 * rect.scale + pad :]
    assert (text_area.min(axis=2) > 230).any()  # white text on the red badge


def test_a_decoded_icon_is_reused() -> None:
    from media.overlay import _decoded_png

    icon = icon_png((1, 2, 3, 255), side=64)
    before = _decoded_png.cache_info().hits
    for i in range(5):
        Overlay(text=f"x{i}", color=(1, 2, 3), image=icon)
    assert _decoded_png.cache_info().hits >= before + 4


# ---- a real viewer --------------------------------------------------------------------


async def test_a_viewer_decodes_the_gift_badge_and_its_combo_update(harness, poll) -> None:
    room = harness.room()
    await harness.publish(room, width=640, height=360)
    viewer = await harness.join(room, "v")
    await poll(lambda: viewer.video_frames >= 3, what="video at the viewer")

    icon = icon_png((255, 255, 255, 255))
    color = (255, 30, 80)  # the Rose's own colour: saturated, far from the test pattern's

    def badge(text: str) -> Overlay:
        return Overlay(text=text, color=color, image=icon, position="left", size=1,
                       key="streak-1", duration_s=30)

    def padding_colour(rect) -> tuple[float, ...] | None:
        frame = viewer.last_video
        if frame is None:
            return None
        rgb = frame.to_ndarray(format="rgb24").astype(int)
        pad = 3 * rect.scale
        # The badge's left padding, away from its edges (VP8 rings a pixel or two).
        patch = rgb[rect.y + 2 : rect.y + rect.height - 2, rect.x + 2 : rect.x + pad - 1]
        mean = patch.reshape(-1, 3).mean(axis=0)
        return tuple(mean.round(1)) if np.all(np.abs(mean - color) < 30) else None

    first = badge("ann sent Rose x1")
    room.add_overlay(first)
    [(_, rect)] = overlay_layout([first], 640, 360)
    await poll(lambda: padding_colour(rect), timeout=5, what="the gift badge at the viewer")

    # The combo replaces the badge: still one badge at the same place, now wider (x12).
    combo = badge("ann sent Rose x12")
    room.add_overlay(combo)
    [(_, wide)] = overlay_layout([combo], 640, 360)
    assert (wide.x, wide.y) == (rect.x, rect.y) and wide.width > rect.width
    right_edge = type(rect)(wide.x + rect.width + 2, wide.y, wide.width - rect.width - 2,
                            wide.height, wide.scale)

    def grown() -> bool:
        frame = viewer.last_video
        if frame is None:
            return False
        rgb = frame.to_ndarray(format="rgb24").astype(int)
        strip = rgb[wide.y + 2 : wide.y + wide.height - 2,
                    right_edge.x : wide.x + wide.width - 2]
        # The badge's colour (or its white text) now covers where the pattern was.
        near = np.all(np.abs(strip - color) < 40, axis=2) | (strip.min(axis=2) > 200)
        return bool(near.mean() > 0.9)

    await poll(grown, timeout=5, what="the combo's wider badge at the viewer")
    below = rect.y + rect.height + 8
    assert padding_colour(type(rect)(rect.x, below, rect.width, rect.height, rect.scale)) is None
