"""Serves web/: the pages, their modules and the npm-installed Socket.IO client.

Every page shares one shell (web/shell.html: the head, the stylesheet, the Socket.IO
client and the site header, which header.js fills in). A page file holds only its own
parts, `<head>...</head>` (title, extra styles, its module) and `<body>...</body>`;
`render_page` puts them into the shell on each request, so an edit shows on reload
with no build step.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from signaling.appkeys import SETTINGS

# The msgpack build of socket.io-client pairs with AsyncServer(serializer='msgpack').
SOCKET_IO_CLIENT = Path("node_modules/socket.io-client/dist/socket.io.msgpack.min.js")

PAGES = {"/": "index.html", "/@{username}": "profile.html", "/studio": "studio.html",
         "/messages": "messages.html", "/notifications": "notifications.html",
         "/wallet": "wallet.html", "/webhooks": "webhooks.html",
         "/replay/{replay_id}": "replay.html"}
SHELL = "shell.html"
HEAD_MARK = "<!-- page head -->"
BODY_MARK = "<!-- page body -->"
PAGE_PARTS = re.compile(r"<head>\n?(?P<head>.*?)</head>\s*<body>\n?(?P<body>.*?)</body>",
                        re.DOTALL)


def render_page(web_dir: Path, name: str) -> str:
    """The page web_dir/name inside the shell; ValueError names a page without its parts."""
    page = (web_dir / name).read_text()
    parts = PAGE_PARTS.search(page)
    if parts is None:
        raise ValueError(f"{name} must hold <head>...</head> and <body>...</body>")
    shell = (web_dir / SHELL).read_text()
    return (shell.replace(HEAD_MARK, parts["head"].rstrip("\n"))
            .replace(BODY_MARK, parts["body"].rstrip("\n")))


def _page(name: str):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.Response:
        html = render_page(request.app[SETTINGS].web_dir, name)
        return web.Response(text=html, content_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    return handle


async def socket_io_client(request: web.Request) -> web.StreamResponse:
    path = request.app[SETTINGS].web_dir / SOCKET_IO_CLIENT
    if not path.exists():
        raise web.HTTPServiceUnavailable(
            text="socket.io-client is not installed: run `npm ci` in web/ (./run serve does)")
    return web.FileResponse(path)


FAVICON = Path("static/favicon.svg")


async def favicon(request: web.Request) -> web.StreamResponse:
    """/favicon.ico, which browsers and crawlers ask for whatever the page links: the
    SVG mark (every current browser takes an SVG icon), cached for a day."""
    return web.FileResponse(request.app[SETTINGS].web_dir / FAVICON, headers={
        "Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400"})


def setup(app: web.Application) -> None:
    web_dir = app[SETTINGS].web_dir
    for route, name in PAGES.items():
        app.router.add_get(route, _page(name))
    app.router.add_get("/vendor/socket.io.msgpack.min.js", socket_io_client)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/static/", web_dir / "static", append_version=False)
