"""Typed keys of the aiohttp Application: it owns every lifetime."""

from __future__ import annotations

from aiohttp import web

from signaling.config import Settings
from signaling.gateway import Gateway
from signaling.live_rooms import LiveRooms
from signaling.metrics import Metrics
from signaling.services import Services

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
GATEWAY = web.AppKey("gateway", Gateway)
SERVICES = web.AppKey("services", Services)
LIVES = web.AppKey("lives", LiveRooms)
