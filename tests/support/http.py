"""Plain blocking HTTP to a real `golive serve` process, as curl would send it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def post(url: str, body: dict[str, Any] | bytes, token: str | None = None,
         timeout: float = 10) -> tuple[int, Any]:
    """POST `body` (a dict sent as JSON, or raw bytes) with an optional bearer token; the
    status and the decoded JSON answer, for an error status too."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
