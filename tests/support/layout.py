"""Layout checks in a real browser: what a person could tap must not sit on top of each
other, and the controls that matter must be inside the window (no scrolling to reach
them). Boxes come from getBoundingClientRect in the page."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page

# Visible, tappable elements; a hidden one (display: none, visibility: hidden, zero size,
# off-screen) is no target. `extra` adds testids of non-interactive parts (pills, titles).
_BOXES = """([selector, extra]) => {
  const seen = new Set();
  const out = [];
  const nodes = [...document.querySelectorAll(selector)];
  for (const id of extra) nodes.push(...document.querySelectorAll(`[data-testid="${id}"]`));
  for (const node of nodes) {
    if (seen.has(node)) continue;
    seen.add(node);
    const style = getComputedStyle(node);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    if (node.closest('[hidden]')) continue;
    const r = node.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) continue;
    if (r.bottom <= 0 || r.right <= 0 || r.top >= innerHeight || r.left >= innerWidth) continue;
    const name = node.dataset.testid || node.getAttribute('aria-label')
      || `${node.tagName.toLowerCase()}:${(node.textContent || '').trim().slice(0, 20)}`;
    out.push({ name, x: r.left, y: r.top, w: r.width, h: r.height });
  }
  return out;
}"""

INTERACTIVE = ("a[href], button, input:not([type=hidden]), select, textarea, summary, "
               "[role=button]")


def within(root: str, selector: str = INTERACTIVE) -> str:
    """`selector` narrowed to the descendants of `root` (a full-screen layer, the header)."""
    return ", ".join(f"{root} {part.strip()}" for part in selector.split(","))


async def boxes(page: Page, extra: tuple[str, ...] = (), selector: str = INTERACTIVE
                ) -> list[dict[str, Any]]:
    """The visible, on-screen boxes of the interactive elements (and of `extra` testids)."""
    return await page.evaluate(_BOXES, [selector, list(extra)])  # type: ignore[no-any-return]


def overlapping(items: list[dict[str, Any]], tolerance: float = 1.0
                ) -> list[tuple[str, str]]:
    """Pairs of boxes that overlap by more than `tolerance` px both ways (a box inside
    another, like a link's own child, counts: the page tests list leaf targets only)."""
    pairs = []
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            if dx > tolerance and dy > tolerance:
                pairs.append((a["name"], b["name"]))
    return pairs


async def assert_no_overlaps(page: Page, extra: tuple[str, ...] = (),
                             ignore: tuple[tuple[str, str], ...] = (),
                             selector: str = INTERACTIVE) -> None:
    """No two visible interactive elements (or `extra` parts) overlap; `ignore` lists
    pairs that are meant to (none today); `selector` narrows what is checked."""
    found = [pair for pair in overlapping(await boxes(page, extra, selector))
             if pair not in ignore and pair[::-1] not in ignore]
    assert found == [], f"overlapping elements at {page.viewport_size}: {found}"


async def assert_in_viewport(page: Page, *testids: str) -> None:
    """Each testid's element is visible and wholly inside the window, the page unscrolled."""
    size = page.viewport_size
    assert size is not None
    for testid in testids:
        box = await page.get_by_test_id(testid).bounding_box()
        assert box is not None, f"{testid} is not shown"
        inside = (box["x"] >= -0.5 and box["y"] >= -0.5
                  and box["x"] + box["width"] <= size["width"] + 0.5
                  and box["y"] + box["height"] <= size["height"] + 0.5)
        assert inside, f"{testid} at {box} is outside the {size} window"
