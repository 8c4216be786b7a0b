"""golive's edge: the aiohttp app, the Socket.IO server, HTTP routes and the `golive` command."""
