"""Typed keys of the aiohttp Application: the Server and the parts handlers reach.

signaling/app.py fills every key from the one Server (signaling/server.py); feature
modules never read the app, they get what they need by constructor.
"""

from __future__ import annotations

from aiohttp import web

from signaling.chat import CHAT
from signaling.config import Settings
from signaling.gateway import Gateway
from signaling.gifts import GIFTS
from signaling.live_rooms import LiveRooms
from signaling.metrics import Metrics
from signaling.notifications import ALERT_FANOUT, NOTIFIER
from signaling.server import Server
from signaling.services import Services

SERVER = web.AppKey("server", Server)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
GATEWAY = web.AppKey("gateway", Gateway)
SERVICES = web.AppKey("services", Services)
LIVES = web.AppKey("lives", LiveRooms)

__all__ = [
           "ALERT_FANOUT",
           "CHAT",
           "GATEWAY",
           "GIFTS",
           "LIVES",
           "METRICS",
           "NOTIFIER",
           "SERVER",
           "SERVICES",
           "SETTINGS",
]
