"""Whether a consumer's input has stalled because its producer stopped.

A consumer whose producer is frozen or dead sees no new input and no lag of
its own, so by its own numbers it is healthy while nothing flows. What shows
the stall is the producer's backlog: entries its groups have not acknowledged
(lag + pending) that do not shrink. ``UpstreamWatch`` follows that backlog
for each producer of this service's input topics, from the same ``Bus.info``
sample the process takes for its lag metrics, and names a producer whose
backlog stayed above zero without shrinking for ``stall_after_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from tradewind.bus import TopicInfo
from tradewind.topics import CONTROL, PRODUCES, SERVICES

PRODUCERS: Mapping[str, str] = {
    topic: service
    for service in SERVICES
    for topic in PRODUCES[service]
    if topic != CONTROL and not topic.startswith(CONTROL + ".")
}
"""The service that publishes each topic, from the topic table. Control is
left out: operators write it too, so a quiet control stream is no stall."""


def _of(service: str, group: str) -> bool:
    return group == service or group.startswith(service + ".")


class UpstreamWatch:
    def __init__(
        self,
        service: str | Sequence[str],
        stall_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``service``: one, or the services grouped in this process (their
        producers among themselves are not upstream)."""
        self.services = (service,) if isinstance(service, str) else tuple(service)
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._last: dict[str, tuple[int, float]] = {}
        """producer -> (backlog at the last sample, when it last shrank or was 0)"""
        self.stalled: dict[str, str] = {}

    def update(self, info: Mapping[str, TopicInfo]) -> None:
        now = self._clock()
        producers = {
            PRODUCERS[topic]
            for topic, ti in info.items()
            if topic in PRODUCERS and any(_of(s, g) for s in self.services for g in ti.groups)
        } - set(self.services)
        stalled: dict[str, str] = {}
        for producer in sorted(producers):
            backlog = sum(
                gi.lag + gi.pending
                for ti in info.values()
                for g, gi in ti.groups.items()
                if _of(producer, g)
            )
            last, since = self._last.get(producer, (0, now))
            if backlog == 0 or backlog < last:
                since = now
            self._last[producer] = (backlog, since)
            if backlog and now - since >= self.stall_after_s:
                stalled[producer] = (
                    f"upstream {producer} has {backlog} entries unacknowledged, "
                    f"not shrinking for {now - since:.0f}s"
                )
        self.stalled = stalled
