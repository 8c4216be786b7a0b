"""Checks for the private details of libraries that golive relies on.

golive reaches past the public API of a few libraries where a CPU profile demanded it
(the lean fan-out sends through aiortc's SRTP session and aioice's nominated pair; the
chat push writes one websocket frame to every socket through python-engineio's driver
and aiohttp's transport). A minor release can rename any of those. Each such library
has ONE adapter module (media/aiortc_private.py, media/aioice_private.py,
signaling/engineio_private.py, signaling/socketio_private.py,
signaling/aiohttp_private.py) that holds every access to its privates, lists them as
`Private` values, and calls `require()` at import: a library outside the supported range,
or one whose class no longer has an attribute, stops the import with an error naming
the attribute and the range, instead of failing later, quietly, on a hot path.

tests/test_library_privates.py is the canary: it builds real objects of each library
and checks every listed attribute on them, one test per attribute.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

Version = tuple[int, ...]


class IncompatibleLibrary(ImportError):
    """An installed library is outside the range golive's adapter was written for."""


@dataclass(frozen=True, slots=True)
class Private:
    """One private attribute of a library class that golive reads, writes or overrides.

    `name` is spelt as the class's source spells it (`__jitter_buffer`, not the mangled
    `_RTCRtpReceiver__jitter_buffer`); `instance` says it is set on instances (assigned
    in the owner's source, `self.<name> = ...` or `packet.<name> = ...`) rather than
    defined on the class.
    """

    owner: type
    name: str
    instance: bool
    used_by: str

    @property
    def attribute(self) -> str:
        """The name as getattr() sees it (name-mangled for `__x`)."""
        if self.name.startswith("__") and not self.name.endswith("__"):
            return f"_{self.owner.__name__.lstrip('_')}{self.name}"
        return self.name

    @property
    def label(self) -> str:
        return f"{self.owner.__module__}.{self.owner.__qualname__}.{self.name}"

    def present_in_class(self) -> bool:
        """True if the installed library still defines it (class attribute or an
        assignment to it in the class's own source)."""
        if not self.instance:
            return hasattr(self.owner, self.attribute)
        try:
            source = inspect.getsource(self.owner)
        except (OSError, TypeError):  # no source shipped: only the canary can tell
            return True
        return re.search(rf"\b\w+\.{re.escape(self.name)}\s*[:=](?!=)", source) is not None


def parse_version(text: str) -> Version:
    """'1.16.0' -> (1, 16, 0); a pre-release or local suffix is ignored ('4.15.1rc1' -> 4.15.1)."""
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def in_range(installed: Version, low: Version, below: Version) -> bool:
    """low <= installed < below, compared as release tuples."""
    return low <= installed < below


def require(distribution: str, low: str, below: str, privates: tuple[Private, ...]) -> str:
    """Raise IncompatibleLibrary unless `distribution` is installed within [low, below)
    and defines every private in `privates`. Returns the installed version."""
    try:
        installed = version(distribution)
    except PackageNotFoundError:
        raise IncompatibleLibrary(f"{distribution} is not installed") from None
    supported = f">={low},<{below}"
    if not in_range(parse_version(installed), parse_version(low), parse_version(below)):
        names = ", ".join(p.label for p in privates)
        raise IncompatibleLibrary(
            f"{distribution} {installed} is outside the range golive supports ({supported}); "
            f"golive reads its private attributes {names}. Install from the lock "
            "(requirements.lock) or update the adapter and its canary test.")
    missing = [p for p in privates if not p.present_in_class()]
    if missing:
        raise IncompatibleLibrary(
            f"{distribution} {installed} lacks {', '.join(p.label for p in missing)} "
            f"(used by {', '.join(p.used_by for p in missing)}; supported {supported})")
    return installed
