"""Prometheus metrics of one server (its own registry, so tests can run many apps)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from media.admission import AdmissionStats
from media.peers import peer_counts

UNKNOWN_EVENT = "<unknown>"


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sockets = Gauge("golive_sockets_connected", "Socket.IO connections open",
                             registry=self.registry)
        self.connects_refused = Counter(
            "golive_socket_connects_refused_total", "Socket.IO connections refused, by reason",
            ["reason"], registry=self.registry)
        # Label values are only registered event names or UNKNOWN_EVENT, so a
        # client cannot grow the series count by inventing names.
        self.events = Counter("golive_events_total", "Socket.IO events handled",
                              ["event", "outcome"], registry=self.registry)
        self.event_seconds = Histogram(
            "golive_event_seconds", "time to handle a Socket.IO event", ["event"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry)
        self.redis_rtt = Histogram(
            "golive_redis_rtt_seconds", "Redis PING round-trip time",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1),
            registry=self.registry)
        # The push bus (signaling/push_bus.py): what crossed nodes, and what was lost.
        self.bus_messages = Counter(
            "golive_bus_messages_total",
            "push bus envelopes, by outcome (published, delivered, not_published, undecodable)",
            ["outcome"], registry=self.registry)
        self.bus_reconnects = Counter(
            "golive_bus_reconnects_total",
            "times the push bus lost its Redis connection (pushes from other nodes missed)",
            registry=self.registry)
        self.push_fallbacks = Counter(
            "golive_push_fallbacks_total",
            "room pushes to an upgraded socket that took engine.io's queue, by reason",
            ["reason"], registry=self.registry)
        self.frames_dropped = Counter(
            "golive_undecodable_frames_total",
            "websocket text frames that were no Engine.IO packet, dropped", registry=self.registry)
        self.embedded_redis_restarts = Counter(
            "golive_embedded_redis_restarts_total",
            "times the embedded redis-server died and was started again",
            registry=self.registry)
        self.fanout_path = Gauge("golive_fanout_path",
                                 "the media fan-out's send path in use (1), by path", ["path"],
                                 registry=self.registry)
        self.http_requests = Counter("golive_http_requests_total", "HTTP API requests",
                                     ["route", "status"], registry=self.registry)
        self.webhook_attempts = Counter(
            "golive_webhook_attempts_total", "webhook delivery attempts this node made, by "
            "outcome: delivered, retrying, dead, lost (its lease ran out first)", ["outcome"],
            registry=self.registry)
        # What a leak shows in (bench/soak.py compares them idle before and after load):
        # the process's RSS and open fds (process_*, from /proc on Linux), its asyncio
        # tasks and its peer connections.
        ProcessCollector(registry=self.registry)
        Gauge("golive_asyncio_tasks", "asyncio tasks not yet done in the server's event loop",
              registry=self.registry).set_function(_asyncio_tasks)
        self.registry.register(_PeerCollector())

    def watch_joins(self, stats: Callable[[], AdmissionStats]) -> None:
        """Export the node's join admission (media/admission.py), read at each scrape."""
        self.registry.register(_JoinCollector(stats))

    def watch_held_viewers(self, held: Callable[[], int]) -> None:
        """Export how many viewers whose socket dropped are held for their resume
        (signaling/viewer_hold.py), read at each scrape."""
        Gauge("golive_viewers_held", "viewers whose socket dropped, held (still counted, "
              "media running) for their page's room:resume", registry=self.registry
              ).set_function(lambda: float(held()))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _asyncio_tasks() -> float:
    try:  # a scrape runs in the event loop (the /metrics handler)
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # no running loop (a scrape from another thread)
        return float("nan")


class _PeerCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        open_count, alive = peer_counts()
        yield GaugeMetricFamily("golive_peer_connections",
                                "WebRTC peer connections (creators and viewers) not closed",
                                value=open_count)
        yield GaugeMetricFamily("golive_peer_connections_alive",
                                "peer connection objects not yet freed, closed ones included",
                                value=alive)


class _JoinCollector(Collector):
    def __init__(self, stats: Callable[[], AdmissionStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self._stats()
        yield GaugeMetricFamily("golive_join_handshakes",
                                "viewer joins in their media handshake now", value=s.handshakes)
        yield GaugeMetricFamily("golive_join_waiting",
                                "viewer joins waiting for a handshake place", value=s.waiting)
        yield GaugeMetricFamily("golive_join_handshakes_limit",
                                "handshakes at once (GOLIVE_JOIN_HANDSHAKES)",
                                value=s.max_handshakes)
        yield GaugeMetricFamily("golive_join_handshakes_allowed",
                                "handshakes allowed at once now (lowered while the event "
                                "loop runs late)", value=s.limit)
        yield GaugeMetricFamily("golive_event_loop_lag_seconds",
                                "the event loop's lateness at the join admission's last probe",
                                value=s.lag_s)
        yield GaugeMetricFamily("golive_join_queue_limit",
                                "joins that may wait (GOLIVE_JOIN_QUEUE)", value=s.max_waiting)
        outcomes = CounterMetricFamily(
            "golive_joins", "viewer joins by admission outcome: admitted (at once or after "
            "waiting), waited, refused (unavailable + retry_after), expired (place held past "
            "its bound)", labels=["outcome"])
        for outcome in ("admitted", "waited", "refused", "expired"):
            outcomes.add_metric([outcome], getattr(s, outcome))
        yield outcomes
