"""ICE configuration: explicit STUN/TURN servers and which host addresses aioice may use.

Two facts measured on these machines shape this module:
- aiortc contacts stun.l.google.com when RTCConfiguration.iceServers is None, so every
  configuration we build passes an explicit list (empty by default).
- aioice's host-candidate lookup skips 127.0.0.1 (and ::1). On a loopback-only host the
  SDP then carries no candidates and never connects; `restrict_host_addresses` swaps that
  lookup for a fixed list, reversibly: the one patch of aioice's module (the private
  attributes golive reads are in media/aioice_private.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from media.errors import invalid

_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server, as configuration (credentials only for TURN)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def __init__(
        self, urls: str | Iterable[str], username: str | None = None, credential: str | None = None
    ) -> None:
        url_list = (urls,) if isinstance(urls, str) else tuple(urls)
        if not url_list:
            raise invalid("an ICE server needs at least one url")
        for url in url_list:
            if not isinstance(url, str) or not url.startswith(_ICE_SCHEMES):
                raise invalid(
                    f"ICE server url must start with stun:, stuns:, turn: or turns:: {url!r}"
                )
        object.__setattr__(self, "urls", url_list)
        object.__setattr__(self, "username", username)
        object.__setattr__(self, "credential", credential)


def rtc_configuration(
    ice_servers: Sequence[IceServer] = (), *, relay_only: bool = False
) -> RTCConfiguration:
    """An aiortc configuration with an explicit server list and max-bundle.

    max-bundle puts audio and video on one ICE/DTLS transport: one socket and one ICE
    check per viewer instead of two. `relay_only` is the browser's iceTransportPolicy
    "relay": aioice gathers only the TURN server's relay candidate (aiortc uses the first
    TURN server of the list), as a client behind a firewall that lets only TURN through.
    """
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in ice_servers
        ],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL,
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


# aioice's own lookup, kept so a restriction can always be undone.
_AIOICE_HOST_ADDRESSES: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


class HostAddressRestriction:
    """A handle on an active restriction; `restore()` (or leaving the `with`) undoes it.

    Restrictions nest: restoring the innermost one brings back the one before it (or
    aioice's own lookup). Restoring one that is not innermost does nothing.
    """

    def __init__(self, addresses: tuple[str, ...], previous: HostAddressRestriction | None) -> None:
        self.addresses = addresses
        self.previous = previous

    def restore(self) -> None:
        """Undo this restriction if it is the innermost. Safe to call twice."""
        if _active is self:
            _set_lookup(self.previous)

    def __enter__(self) -> HostAddressRestriction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()


_active: HostAddressRestriction | None = None


def _set_lookup(restriction: HostAddressRestriction | None) -> None:
    global _active
    _active = restriction
    if restriction is None:
        setattr(aioice.ice, "get_host_addresses", _AIOICE_HOST_ADDRESSES)  # noqa: B010
        return
    v4 = [a for a in restriction.addresses if ipaddress.ip_address(a).version == 4]
    v6 = [a for a in restriction.addresses if ipaddress.ip_address(a).version == 6]

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return (v4 if use_ipv4 else []) + (v6 if use_ipv6 else [])

    setattr(aioice.ice, "get_host_addresses", get_host_addresses)  # noqa: B010


def restrict_host_addresses(addresses: Iterable[str]) -> HostAddressRestriction:
    """Make aioice gather host candidates only on `addresses` (e.g. ["127.0.0.1"]).

    Process-wide (aioice has one lookup); a later call nests inside an earlier one. Use it when
    the server is bound to loopback and in tests; never elsewhere, since it hides every
    real interface from ICE.
    """
    normalized: list[str] = []
    for address in addresses:
        try:
            normalized.append(str(ipaddress.ip_address(address)))
        except ValueError:
            raise invalid(f"not an IP address: {address!r}") from None
    if not normalized:
        raise invalid("restrict_host_addresses needs at least one address")
    restriction = HostAddressRestriction(tuple(normalized), _active)
    _set_lookup(restriction)
    return restriction


def is_loopback_url(url: str) -> bool:
    """True when url's host is a loopback address (or localhost): peers talking to such a
    server must gather on loopback (see restrict_host_addresses)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
