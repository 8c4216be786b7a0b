"""golive's domain over Redis: accounts, the social graph, rooms, chat, the ledger.

Imports neither signaling/ nor media/, nor aiohttp, socketio or aiortc.
"""
