"""Where the trackers' gates and paces are shared (``bridge.adapters.trackers.ratelimit``).

* ``RedisStore`` when ``REDIS_URL`` is set (workers on many machines): one hash per tracker, read
  with one round trip and written back by a compare-and-set Lua script.
* ``FileStore`` otherwise: without Redis the queue is a SQLite file, so every worker runs on this
  machine, and a small file per tracker under the instance directory, locked with ``flock``, is
  enough. Not the bridge database: intake is bound by its single writer lock, SQLite's busy handler
  sleeps 1-100 ms between tries where ``flock`` wakes the next process at once, and nothing here
  needs to survive a crash (losing the state costs at most one 429).
* ``MemoryStore`` for one process (tests).
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis

from bridge.adapters.trackers.ratelimit import StoreError, TrackerState

_R = TypeVar("_R")
_CAS_ATTEMPTS = 100


class MemoryStore:
    """One process only (tests)."""

    def __init__(self) -> None:
        self._states: dict[str, TrackerState] = {}
        self._lock = threading.Lock()

    def update(self, key: str, change: Callable[[TrackerState], _R]) -> _R:
        with self._lock:
            state = self._states.setdefault(key, TrackerState())
            return change(state)


class FileStore:
    """One JSON file per tracker in ``directory``, read and written under an exclusive ``flock``.

    The kernel queues the waiting processes and wakes the next at once (SQLite's busy handler
    would sleep 1-100 ms between tries), nothing is flushed to disk (the state is disposable), and
    the bridge database's single writer lock stays free for intake.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._lock = threading.Lock()  # flock does not exclude threads sharing one descriptor
        self._fds: dict[str, int] = {}
        self._pid = os.getpid()

    def update(self, key: str, change: Callable[[TrackerState], _R]) -> _R:
        with self._lock:
            try:
                fd = self._fd(key)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise StoreError(f"{type(exc).__name__}: {exc}") from exc
            try:
                state = TrackerState.decode(self._read(fd))
                result = change(state)
                if state.dirty:
                    data = state.encode()
                    os.pwrite(fd, data, 0)
                    os.ftruncate(fd, len(data))
                return result
            except OSError as exc:
                raise StoreError(f"{type(exc).__name__}: {exc}") from exc
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _fd(self, key: str) -> int:
        if self._pid != os.getpid():  # a forked child must not share the parent's descriptors
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(key)
        if fd is None:
            self._directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._directory / f"{key}.json", os.O_RDWR | os.O_CREAT, 0o600)
            self._fds[key] = fd
        return fd

    @staticmethod
    def _read(fd: int) -> bytes:
        chunks = []
        offset = 0
        while chunk := os.pread(fd, 1 << 16, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)


# Write ``state`` only if nobody wrote since it was read (``rev`` unchanged).
_COMPARE_AND_SET = """
if (redis.call('HGET', KEYS[1], 'rev') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'state', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""


class RedisStore:
    """One hash per tracker (``rev``, ``state``): read with one round trip, written back with a
    compare-and-set script, retried on the rare conflict. A call that changes nothing (no quota
    known, no gate) costs one ``HMGET``."""

    def __init__(self, client: redis.Redis, *, prefix: str = "bridge:ratelimit:", ttl_seconds: float = 7200) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = int(ttl_seconds * 1000)
        self._cas = client.register_script(_COMPARE_AND_SET)

    def update(self, key: str, change: Callable[[TrackerState], _R]) -> _R:
        name = self._prefix + key
        try:
            for attempt in range(_CAS_ATTEMPTS):
                if attempt:  # another process wrote in between: step aside a little, then read again
                    time.sleep(random.uniform(0, 0.001 * min(attempt, 10)))
                rev, raw = self._client.hmget(name, ["rev", "state"])
                state = TrackerState.decode(raw.encode() if isinstance(raw, str) else raw)
                result = change(state)
                if not state.dirty:
                    return result
                old = rev.decode() if isinstance(rev, bytes) else (rev or "")
                new = str(int(old or "0") + 1)
                if self._cas(keys=[name], args=[old, new, state.encode(), self._ttl_ms]):
                    return result
        except (redis.RedisError, ValueError) as exc:
            raise StoreError(f"{type(exc).__name__}: {exc}") from exc
        raise StoreError("too many concurrent writers")
