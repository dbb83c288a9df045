"""A consumer names the producer of its input whose backlog stopped shrinking."""

from __future__ import annotations

from tradewind.bus import GroupInfo, TopicInfo
from tradewind.runtime.upstream import UpstreamWatch


def _info(risk_lag: int, risk_pending: int = 0) -> dict[str, TopicInfo]:
    return {
        "signals": TopicInfo(1, {"risk": GroupInfo(risk_lag, risk_pending)}),
        "orders": TopicInfo(1, {"execution": GroupInfo(0, 0), "db_writer": GroupInfo(0, 0)}),
    }


def test_a_backlog_that_does_not_shrink_is_a_stall_and_one_that_shrinks_is_not() -> None:
    now = [0.0]
    watch = UpstreamWatch("execution", 3.0, clock=lambda: now[0])
    for t, lag in [(0, 5), (1, 7), (2, 7)]:
        now[0] = t
        watch.update(_info(lag))
        assert watch.stalled == {}
    now[0] = 3
    watch.update(_info(9, 1))
    assert "upstream risk has 10 entries unacknowledged" in watch.stalled["risk"]
    now[0] = 4
    watch.update(_info(8))
    assert watch.stalled == {}
    now[0] = 20
    watch.update(_info(0))
    assert watch.stalled == {}


def test_a_service_is_not_its_own_upstream_nor_one_whose_topics_it_does_not_read() -> None:
    now = [0.0]
    watch = UpstreamWatch("risk", 1.0, clock=lambda: now[0])
    for t in range(5):
        now[0] = t
        watch.update(_info(5))
    assert watch.stalled == {}
