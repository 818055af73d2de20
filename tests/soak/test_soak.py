"""Soak: many SSE clients on loopback against chronos's handler under uvicorn, with churn.

`test_soak` is the full size (10,000 clients for 10 minutes; `SOAK_CLIENTS`, `SOAK_SECONDS`,
... resize it), marked `soak` and so left out of the default run: `scripts/soak` runs it.
`test_soak_small` runs the same code at 200 clients for 5 seconds in the default run.
"""

from __future__ import annotations

import json
import os

import orjson
import pytest

from tests.soak.driver import SoakConfig, SoakResult, _Client, run_soak

_MIB = 1024


def check(result: SoakResult) -> None:
    config = result.config
    report = json.dumps(result.summary(), indent=1)
    assert result.failed_connects == 0, report
    assert result.server_closes == 0, report  # every client kept reading: none was dropped
    # No lost, duplicated or reordered event, for clients that kept up and across reconnects;
    # a client that did not keep up was told exactly how many it missed.
    assert result.lost == 0, report
    assert result.duplicated == 0, report
    assert result.miscounted_gaps == 0, report
    assert result.foreign == 0, report
    assert result.id_errors == 0, report
    assert result.incomplete == 0, report
    assert result.kept_up > 0, report
    assert result.resumed > 0, report
    assert result.replaced > 0, report
    assert result.events >= result.published * config.clients_per_topic // 2, report
    # One subscription and one handler per open stream, and none once every client is gone.
    assert result.server_at_end["subscriptions"] == result.open_at_end, report
    assert result.server_at_end["handlers_running"] == result.open_at_end, report
    assert result.server_at_end["handlers_started"] == result.connections, report
    assert result.server_after_close["subscriptions"] == 0, report
    assert result.server_after_close["handlers_running"] == 0, report
    assert result.server_after_close["fds"] <= result.fds_before_clients, report
    # Memory flat after warm-up: the late half of the run within 5% (at least 16 MiB) of the
    # early half. At full size (50 reconnections a second, the halves' medians ~225 s apart)
    # a leak of 1.5 KiB per reconnection would exceed it.
    bound = max(16 * _MIB, 0.05 * result.rss_warm_kib)
    assert result.rss_growth_kib < bound, report
    assert not result.server_log_errors, report


def test_soak_small() -> None:
    config = SoakConfig(
        clients=200,
        seconds=5,
        topic_rate=20,
        clients_per_topic=50,
        churn=0.1,
        reconnect_delay=0.5,
        replay_seconds=5,
    )
    check(run_soak(config))


@pytest.mark.soak
@pytest.mark.timeout(float(os.environ.get("SOAK_SECONDS", "600")) + 600)
def test_soak() -> None:
    result = run_soak(SoakConfig.from_env())
    print("\nsoak result:", json.dumps(result.summary(), indent=1))
    if path := os.environ.get("SOAK_REPORT"):
        with open(path, "w") as report:
            json.dump(result.summary() | {"samples": result.samples}, report, indent=1)
    check(result)


def test_the_check_counts_lost_duplicated_and_foreign_events() -> None:
    client = _Client("t0")

    def deliver(position: int, seq: int, topic: str = "t0") -> None:
        id_ = f"1000-{position}"
        data = {"seq": seq, "pad": ""}
        client.on_message(
            id_.encode(), orjson.dumps({"id": id_, "type": "tick", "topic": topic, "data": data})
        )

    def gap(position: int, missed: int | None, reason: str = "overflow") -> None:
        id_ = f"1000-{position}"
        data = {"reason": reason, "missed": missed, "first_id": None, "last_id": id_}
        client.on_message(
            id_.encode(), orjson.dumps({"id": id_, "type": "gap", "topic": None, "data": data})
        )

    deliver(1, 1)
    deliver(2, 2)
    deliver(4, 4)  # 3 is lost
    deliver(5, 4)  # a duplicate
    deliver(6, 1, topic="t1")
    gap(8, 2)
    deliver(9, 7)  # 5 and 6 dropped, as announced
    gap(10, 5)
    deliver(11, 9)  # announced 5, missed 1
    gap(12, None, reason="expired")
    deliver(20, 15)  # an expired gap does not say how many
    assert (client.lost, client.duplicated, client.foreign) == (1, 1, 1)
    assert client.miscounted == 1
    assert client.gaps == ["overflow", "overflow", "expired"]
    assert client.last_seq == 15
    assert client.last_id == b"1000-20"
