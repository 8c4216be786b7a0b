"""The pages of web/ share one shell (web/shell.html); each page file holds only its
own head lines and body, and is served whole (signaling/web_pages.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from signaling.web_pages import PAGES, SHELL, render_page

WEB = Path(__file__).resolve().parent.parent / "web"
SHARED = ('<meta charset="utf-8">', 'href="/static/golive.css"',
          'src="/vendor/socket.io.msgpack.min.js"', 'data-testid="site-header"')


def test_every_page_file_is_served_and_holds_no_shared_part() -> None:
    files = {p.name for p in WEB.glob("*.html")} - {SHELL}
    assert files == set(PAGES.values())
    for name in files:
        text = (WEB / name).read_text()
        assert [s for s in SHARED if s in text] == [], name


@pytest.mark.parametrize("name", sorted(PAGES.values()))
def test_a_rendered_page_is_the_shell_around_its_parts(name: str) -> None:
    html = render_page(WEB, name)
    assert html.startswith("<!doctype html>\n<html lang=\"en\">")
    assert html.rstrip().endswith("</body>\n</html>")
    for shared in SHARED:
        assert html.count(shared) == 1, (name, shared)
    assert html.count("<title>") == 1 and html.index("<title>") < html.index("</head>")
    module = f'src="/static/{name.removesuffix(".html").replace("index", "landing")}.js"'
    assert module in html and html.index(module) < html.index("</head>")
    assert html.count("<main") == 1 and html.index("site-header") < html.index("<main")
    assert "<!-- page" not in html


def test_a_page_without_its_parts_is_refused(tmp_path: Path) -> None:
    (tmp_path / SHELL).write_text((WEB / SHELL).read_text())
    (tmp_path / "odd.html").write_text("<main>no head</main>")
    with pytest.raises(ValueError, match=r"odd\.html must hold"):
        render_page(tmp_path, "odd.html")


async def test_pages_are_served_as_html(client: Any) -> None:
    resp = await client.get("/wallet")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert resp.headers["Cache-Control"] == "no-cache"
    html = await resp.text()
    assert "<title>Wallet · golive</title>" in html and 'data-testid="site-header"' in html


async def test_the_favicon_is_served(client: Any) -> None:
    """Browsers ask for /favicon.ico whatever a page links; it was a 404."""
    resp = await client.get("/favicon.ico")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("image/svg+xml")
    assert (await resp.text()).startswith("<svg")
    assert 'rel="icon" href="/favicon.ico"' in render_page(WEB, "index.html")


# What the Content-Security-Policy (signaling/security_headers.py: script-src and
# style-src 'self') would refuse, and what would put user text in as markup.
INLINE_IN_HTML = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|\sstyle\s*=|<style\b"
                            r"|javascript:", re.IGNORECASE)
# (el() refuses a style string itself: web/static/dom.js.)
UNSAFE_IN_JS = re.compile(r"\.innerHTML\b|\.outerHTML\s*=|insertAdjacentHTML|document\.write"
                          r"|\beval\(|new Function\b|setAttribute\(\s*['\"](style|on\w+)['\"]")


@pytest.mark.parametrize("name", sorted(PAGES.values()))
def test_a_page_holds_no_inline_script_handler_or_style(name: str) -> None:
    html = render_page(WEB, name)
    assert INLINE_IN_HTML.findall(html) == [], name


def test_no_module_writes_markup_or_inline_code() -> None:
    found = [f"{path.name}:{number}: {line.strip()}"
             for path in sorted((WEB / "static").glob("*.js"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if UNSAFE_IN_JS.search(line) and not line.lstrip().startswith(("*", "/*", "//"))]
    assert found == []
