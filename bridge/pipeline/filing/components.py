"""A project's components (Jira), read through the tracker adapter and cached like the sprints.

A new issue's category goes in as the project's component of that name when the project has one;
a burst of reports should not ask for the list every time, so it is kept ``cache_seconds``
(``mappings/sprints.yaml``'s ``cache_seconds``, the sprints' cache time).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from bridge.adapters.trackers.base import Tracker
from bridge.domain import Destination
from bridge.errors import PermanentError

log = logging.getLogger(__name__)


class ProjectComponents:
    def __init__(
        self,
        *,
        trackers: Mapping[str, Tracker],
        cache_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._trackers = trackers
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}

    def forget(self, dest: Destination) -> None:
        """Drop ``dest``'s cached components: Jira refused one of them."""
        with self._lock:
            self._cached.pop((dest.tracker, dest.project), None)

    def of(self, dest: Destination) -> tuple[str, ...]:
        """The names of ``dest``'s components. A project whose components cannot be read for good
        (no permission, no such project) has none: the category goes in as a label instead, and
        the report is filed all the same. A passing failure (``RetryableError``) is raised: the
        filing job tries again later."""
        key = (dest.tracker, dest.project)
        with self._lock:
            cached = self._cached.get(key)
            if cached and cached[0] > self._monotonic():
                return cached[1]
        try:
            names = self._trackers[dest.tracker].components(dest)
        except PermanentError as exc:
            log.warning("components.unavailable", extra={"tracker": dest.tracker, "error": str(exc)})
            names = ()
        with self._lock:
            self._cached[key] = (self._monotonic() + self._cache_seconds, names)
        return names
