"""Serves web/: the pages, their modules and the npm-installed Socket.IO client."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from signaling.appkeys import SETTINGS

# The msgpack build of socket.io-client pairs with AsyncServer(serializer='msgpack').
SOCKET_IO_CLIENT = Path("node_modules/socket.io-client/dist/socket.io.msgpack.min.js")

PAGES = {"/": "index.html", "/@{username}": "profile.html", "/studio": "studio.html",
         "/messages": "messages.html", "/notifications": "notifications.html",
         "/wallet": "wallet.html"}


def _page(name: str):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.FileResponse:
        path = request.app[SETTINGS].web_dir / name
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return handle


async def socket_io_client(request: web.Request) -> web.StreamResponse:
    path = request.app[SETTINGS].web_dir / SOCKET_IO_CLIENT
    if not path.exists():
        raise web.HTTPServiceUnavailable(
            text="socket.io-client is not installed: run `npm ci` in web/ (./run serve does)")
    return web.FileResponse(path)


def setup(app: web.Application) -> None:
    web_dir = app[SETTINGS].web_dir
    for route, name in PAGES.items():
        app.router.add_get(route, _page(name))
    app.router.add_get("/vendor/socket.io.msgpack.min.js", socket_io_client)
    app.router.add_static("/static/", web_dir / "static", append_version=False)
