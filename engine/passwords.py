"""Password hashing with argon2id (memory-hard), off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    """Hashes and verifies passwords in worker threads.

    One argon2id hash with the library's defaults (64 MiB, t=3) takes ~50 ms of
    CPU and 64 MiB of memory, so hashing runs in threads and at most
    `concurrency` at once: a sign-up storm cannot block the loop or pin
    gigabytes.
    """

    def __init__(self, *, concurrency: int = 2, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self._verify, stored_hash, password)

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


# A fixed hash to verify against when the username does not exist, so a
# sign-in for an unknown user costs the same time as a wrong password.
def dummy_hash(hasher: PasswordHasher | None = None) -> str:
    return (hasher or PasswordHasher()).hash("golive-timing-equaliser")
