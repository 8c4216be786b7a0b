"""The cascade at the node: the origin's relay listener as a feature, and its metrics.

LiveRooms (signaling/live_rooms.py) owns the relay server (its hosted lives are what
it relays) and the edge rooms; this feature opens the listener on HOST:GOLIVE_RELAY_PORT
before the node announces itself, so the node record carries the relay's address
(the host of GOLIVE_NODE_ADDRESS, the port bound), and closes it on shutdown.

/metrics: golive_relays_open{side} (origin: edges subscribed here; edge: relays this
node opened), golive_relay_frames_total{edge} and golive_relay_frames_dropped_total{edge}
(frames the origin wrote to each edge node, and skipped for it when it was too slow),
golive_relay_refused_total{reason} (relay clients refused: unauthorized, forbidden, invalid,
not_found, timeout, disconnected), golive_relay_hop_seconds{quantile} at an edge (the
origin's send to the edge's receive over the open relays' last frames; the two nodes'
wall clocks, so only meaningful on one machine or with synchronised clocks),
golive_relay_renditions{side,rendition} (origin: edges taking each rendition of the
lives hosted here; edge: this node's relays subscribed to it) and
golive_rendition_frames_total{rendition} (frames encoded at each rendition by the lives
hosted here now: a rendition nobody takes, here or at an edge, stops growing).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from signaling.config import Settings
from signaling.feature import Feature
from signaling.live_rooms import LiveRooms
from signaling.metrics import Metrics
from signaling.presence import NodePresence

log = logging.getLogger("golive.relay")


def relay_address(advertised: str, port: int) -> str:
    """The relay's address for other nodes: the advertised address's host, the relay's
    port ('10.0.0.12:8080', 7000 -> '10.0.0.12:7000'; '[::1]:80', 7 -> '[::1]:7')."""
    host = advertised.rpartition(":")[0] or advertised
    return f"{host}:{port}"


class RelayListener(Feature):
    """Opens the origin's relay listener (LiveRooms.relay) and puts its address into the
    node record; opened before the node announces itself (Server.open_redis)."""

    def __init__(self, lives: LiveRooms, node: NodePresence, settings: Settings,
                 metrics: Metrics | None = None) -> None:
        super().__init__()
        self.lives = lives
        self.node = node
        self.settings = settings
        self.address = ""
        if metrics is not None:
            metrics.registry.register(_RelayCollector(lives))

    async def on_open(self) -> None:
        port = await self.lives.relay.start(self.settings.host, self.settings.relay_port)
        self.address = relay_address(self.settings.advertised_address(), port)
        self.node.set_relay(self.address)
        log.info("relay listening", extra={"fields": {"address": self.address}})

    async def on_close(self) -> None:
        await self.lives.relay.close()


class _RelayCollector(Collector):
    def __init__(self, lives: LiveRooms) -> None:
        self._lives = lives

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        relay = self._lives.relay
        opened = GaugeMetricFamily("golive_relays_open",
                                   "relays open: origin (edges subscribed to lives hosted "
                                   "here), edge (relays this node opened)", labels=["side"])
        opened.add_metric(["origin"], len(relay.links))
        opened.add_metric(["edge"], sum(1 for room in self._lives.remote.values()
                                        if room.relay is not None))
        yield opened
        taking = GaugeMetricFamily("golive_relay_renditions",
                                   "relays taking each rendition: origin (edges subscribed "
                                   "here), edge (this node's relays)",
                                   labels=["side", "rendition"])
        by_side: dict[tuple[str, str], int] = {}
        for link in relay.links:
            for index in link.renditions:
                if index < len(link.source.ladder):
                    key = ("origin", link.source.ladder[index].name)
                    by_side[key] = by_side.get(key, 0) + 1
        for room in self._lives.remote.values():
            if room.relay is not None and room.relay.ended is None:
                for index in room.relay.subscribed:
                    if index < len(room.relay.ladder):
                        key = ("edge", room.relay.ladder[index].name)
                        by_side[key] = by_side.get(key, 0) + 1
        for (side, name), count in sorted(by_side.items()):
            taking.add_metric([side, name], count)
        yield taking
        encoded = CounterMetricFamily("golive_rendition_frames",
                                      "frames encoded at each rendition by the lives hosted "
                                      "here now", labels=["rendition"])
        totals: dict[str, int] = {}
        for hosted in list(self._lives.hosted.values()):
            for name, count in hosted.media.stats().rendition_frames.items():
                totals[name] = totals.get(name, 0) + count
        for name, count in sorted(totals.items(), key=lambda item: -int(item[0])):
            encoded.add_metric([name], count)
        yield encoded
        frames = CounterMetricFamily("golive_relay_frames",
                                     "frames the origin wrote to each edge node", labels=["edge"])
        dropped = CounterMetricFamily("golive_relay_frames_dropped",
                                      "frames the origin skipped for a slow edge node (its "
                                      "queue full, then up to the next keyframe)",
                                      labels=["edge"])
        for edge, counts in sorted(relay.edge_counts().items()):
            frames.add_metric([edge], counts.relayed)
            dropped.add_metric([edge], counts.dropped)
        yield frames
        yield dropped
        refused = CounterMetricFamily("golive_relay_refused",
                                      "relay clients refused, by reason", labels=["reason"])
        for reason, count in sorted(relay.refused.items()):
            refused.add_metric([reason], count)
        yield refused
        samples = sorted(s for room in self._lives.remote.values() if room.relay is not None
                         for s in room.relay.latencies)
        hop = GaugeMetricFamily("golive_relay_hop_seconds",
                                "the relay hop's latency at this edge (origin send -> edge "
                                "receive), over the open relays' recent frames",
                                labels=["quantile"])
        if samples:
            for q in (0.5, 0.95):
                hop.add_metric([str(q)], samples[min(len(samples) - 1,
                                                     round(q * (len(samples) - 1)))])
        yield hop


__all__ = ["RelayListener", "relay_address"]
