"""modelwatch_client.Watch against a real HTTP server (see conftest.py)."""

from __future__ import annotations

import math
import socket
import threading
import time

import pytest

from modelwatch_client import Watch


def fast(collector_url, **kw):
    """A Watch whose retries and intervals keep a test short."""
    options = dict(flush_interval=0.05, max_backoff=0.05, timeout=2.0)
    options.update(kw)
    return Watch(collector_url, "fraud-fastapi", **options)


def test_wire_format_of_every_field(collector):
    with fast(collector.url) as watch:
        assert watch.observe(
            score=0.25,
            features={"amount": 12.5, "hour": 3, "is_night": True},
            stages={"feature_fetch": 0.001, "inference": 0.002, "postprocess": 0.0001},
            decision="declined",
            feature_times={"customer": 1_700_000_000.5},
            status="success",
            prediction_id="tx-1",
            time=1_700_000_100.25,
            duration=0.0035,
        )
        before = time.time()
        assert watch.observe(value=3.5, status="error")
        after = time.time()
        assert watch.flush(5)
        assert watch.stats().sent == 2
    request = collector.requests[0]
    assert request["path"] == "/v1/models/fraud-fastapi/observations"
    assert request["content_type"] == "application/json"
    first, second = collector.events()
    assert first == {
        "time": 1_700_000_100.25,
        "score": 0.25,
        "features": {"amount": 12.5, "hour": 3.0, "is_night": 1.0},
        "stages": {"feature_fetch": 0.001, "inference": 0.002, "postprocess": 0.0001},
        "feature_times": {"customer": 1_700_000_000.5},
        "decision": "declined",
        "status": "success",
        "prediction_id": "tx-1",
        "duration": 0.0035,
    }
    assert set(second) == {"time", "value", "status"}
    assert before <= second["time"] <= after  # the observe() time, not the send time


def test_url_prefix_and_model_name_are_quoted(collector):
    with Watch(collector.url + "/collector/", "a b/c", flush_interval=0.05) as watch:
        watch.observe(score=0.1)
        assert watch.flush(5)
    assert collector.requests[0]["path"] == "/collector/v1/models/a%20b%2Fc/observations"


def test_batches_of_batch_size_over_one_connection(collector):
    with fast(collector.url, batch_size=10, flush_interval=30) as watch:
        for i in range(35):
            watch.observe(score=i / 35, prediction_id=f"p{i}")
        assert watch.flush(5)
        assert watch.stats().sent == 35
    sizes = [len(r["events"]) for r in collector.requests]
    assert sizes == [10, 10, 10, 5]
    assert [e["prediction_id"] for e in collector.events()] == [f"p{i}" for i in range(35)]
    assert collector.connections == 1


def test_nan_and_none_features_are_missing_and_infinities_are_finite_json(collector):
    with fast(collector.url) as watch:
        watch.observe(
            score=0.5,
            features={"a": float("nan"), "b": None, "c": float("inf"), "d": -math.inf, "e": 1},
        )
        assert watch.flush(5)
    (event,) = collector.events()
    assert event["features"]["a"] is None
    assert event["features"]["b"] is None
    assert event["features"]["c"] == 1.7976931348623157e308
    assert event["features"]["d"] == -1.7976931348623157e308
    assert event["features"]["e"] == 1.0


def test_invalid_arguments_are_counted_not_raised(collector):
    class Weird:
        def __float__(self):
            raise RuntimeError("no")

    bad_calls = [
        dict(score="0.5"),
        dict(score=float("nan")),
        dict(score=0.1, value=0.2),
        dict(score=0.1, features=5),
        dict(score=0.1, features={"amount": "12"}),
        dict(score=0.1, features={1: 2.0}),
        dict(score=0.1, features={"amount": Weird()}),
        dict(score=0.1, stages={"inference": -0.001}),
        dict(score=0.1, stages={"inference": None}),
        dict(score=0.1, status="ok"),
        dict(score=0.1, status=["success"]),
        dict(score=0.1, decision=1),
        dict(score=0.1, prediction_id="x" * 129),
        dict(score=0.1, prediction_id=7),
        dict(score=0.1, prediction_id=""),
        dict(score=0.1, time=0),
        dict(score=0.1, duration=-1.0),
        dict(score=0.1, time="now"),
        dict(score=0.1, feature_times={"customer": "yesterday"}),
    ]
    with fast(collector.url) as watch:
        for kwargs in bad_calls:
            watch.observe(**kwargs)  # must not raise
        watch.observe(score=0.1, prediction_id="é" * 64)  # 128 bytes: allowed
        assert watch.flush(5)
        stats = watch.stats()
    assert stats.invalid == len(bad_calls)
    assert stats.sent == 1
    assert len(collector.events()) == 1


def test_buffer_full_drops_are_counted_and_nothing_else_is_lost(collector):
    collector.hold.clear()  # the server takes requests but does not answer
    watch = fast(collector.url, batch_size=10, max_buffer=20, flush_interval=30)
    try:
        results = [watch.observe(score=0.1) for _ in range(100)]
        stats = watch.stats()
        # At most one batch in flight plus a full buffer got in; the rest is counted.
        assert results.count(True) <= 30
        assert stats.dropped_buffer_full == results.count(False)
        assert stats.dropped_buffer_full >= 70
        assert not collector.held_too_long  # observe() returned while the server hung
    finally:
        collector.hold.set()
    assert watch.flush(5)
    stats = watch.stats()
    assert stats.sent == results.count(True)
    assert stats.sent + stats.dropped_buffer_full == 100
    assert len(collector.events()) == stats.sent
    watch.close()


def test_a_hung_server_never_blocks_observe(collector):
    collector.hold.clear()
    watch = fast(collector.url, batch_size=1, max_buffer=50, timeout=60)
    try:
        for _ in range(5000):
            watch.observe(score=0.2, features={"amount": 1.0})
        # Reached while the server still holds its first request: nothing waited for it.
        assert not collector.held_too_long
        assert len(collector.requests) == 0
        assert watch.stats().dropped_buffer_full >= 5000 - 51
    finally:
        collector.hold.set()
    watch.close(5)


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_server_drops_after_bounded_retries():
    watch = Watch(f"http://127.0.0.1:{dead_port()}", "m", flush_interval=0.05,
                  max_retries=2, max_backoff=0.01, batch_size=5)
    for _ in range(12):
        assert watch.observe(score=0.3)
    assert watch.flush(10)
    stats = watch.stats()
    assert stats.dropped_send_failed == 12
    assert stats.sent == 0
    assert stats.retries == 2 * 3  # three batches (5, 5, 2), two retries each
    watch.close()


def test_a_slow_server_times_out_and_is_counted(collector):
    collector.hold.clear()
    watch = fast(collector.url, timeout=0.2, max_retries=1)
    try:
        watch.observe(score=0.3)
        assert watch.flush(10)
        assert watch.stats().dropped_send_failed == 1
    finally:
        collector.hold.set()
        watch.close()


def test_429_is_retried_with_backoff_then_sent(collector):
    overloaded = ({"error": {"type": "overloaded", "message": "queue full"}}, {"Retry-After": "0"})
    collector.answer = lambda i, events: (429, *overloaded) if i < 2 else None
    with fast(collector.url, max_retries=3) as watch:
        for i in range(3):
            watch.observe(score=0.1, prediction_id=str(i))
        assert watch.flush(5)
        stats = watch.stats()
    assert stats.sent == 3
    assert stats.retries == 2
    assert stats.dropped_send_failed == 0
    bodies = [r["events"] for r in collector.requests]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]


def test_429_throughout_gives_up_after_max_retries(collector):
    collector.answer = lambda i, events: (
        429, {"error": {"type": "overloaded", "message": "queue full"}}, {"Retry-After": "1"}
    )
    # max_backoff caps the collector's Retry-After: 1 s.
    with fast(collector.url, max_retries=2, max_backoff=0.02) as watch:
        for _ in range(4):
            watch.observe(score=0.1)
        assert watch.flush(5)
        stats = watch.stats()
    assert stats.dropped_send_failed == 4
    assert stats.retries == 2
    assert len(collector.requests) == 3  # the first try and two retries, no more


def test_400_is_not_retried(collector):
    collector.answer = lambda i, events: (
        400,
        {"error": {"type": "invalid_batch", "message": "every event is invalid"},
         "accepted": 0, "rejected": []},
        {},
    )
    with fast(collector.url) as watch:
        for _ in range(3):
            watch.observe(score=0.1)
        assert watch.flush(5)
        stats = watch.stats()
    assert stats.rejected_by_server == 3
    assert stats.retries == 0
    assert len(collector.requests) == 1


def test_404_unknown_model_is_counted_as_rejected(collector):
    collector.answer = lambda i, events: (
        404, {"error": {"type": "model_not_found", "message": "no such model"}}, {}
    )
    with fast(collector.url) as watch:
        watch.observe(score=0.1)
        assert watch.flush(5)
        assert watch.stats().rejected_by_server == 1


def test_events_refused_by_index_are_counted(collector):
    with fast(collector.url) as watch:
        for pid in ["ok1", "refuse1", "ok2", "refuse2", "ok3"]:
            watch.observe(score=0.1, prediction_id=pid)
        assert watch.flush(5)
        stats = watch.stats()
    assert stats.sent == 3
    assert stats.rejected_by_server == 2


def test_refusals_past_the_listed_hundred_are_counted(collector):
    # The collector lists at most 100 refusals; the count comes from `accepted`.
    collector.answer = lambda i, events: (
        202, {"accepted": 10, "rejected": [
            {"index": k, "error": {"type": "invalid_field", "message": "no"}} for k in range(100)
        ]}, {},
    )
    with fast(collector.url, batch_size=150, flush_interval=30) as watch:
        for _ in range(150):
            watch.observe(score=0.1)
        assert watch.flush(5)
        stats = watch.stats()
    assert stats.sent == 10
    assert stats.rejected_by_server == 140


def test_413_splits_the_batch(collector):
    collector.answer = lambda i, events: (
        (413, {"error": {"type": "payload_too_large", "message": "too big"}}, {})
        if len(events) > 4 else None
    )
    with fast(collector.url, batch_size=16, flush_interval=30) as watch:
        for i in range(16):
            watch.observe(score=0.1, prediction_id=str(i))
        assert watch.flush(5)
        stats = watch.stats()
    assert stats.sent == 16
    delivered = [e["prediction_id"] for r in collector.requests if len(r["events"]) <= 4
                 for e in r["events"]]
    assert delivered == [str(i) for i in range(16)]


def test_a_keep_alive_connection_closed_by_the_server_loses_nothing(collector):
    collector.close_after_each = True
    with fast(collector.url, batch_size=1, max_retries=1) as watch:
        for i in range(5):
            watch.observe(score=0.1, prediction_id=str(i))
            assert watch.flush(5)
        stats = watch.stats()
    assert stats.sent == 5
    assert stats.dropped_send_failed == 0
    assert [e["prediction_id"] for e in collector.events()] == [str(i) for i in range(5)]


def test_close_flushes_and_later_observes_are_counted(collector):
    watch = fast(collector.url, flush_interval=60, batch_size=100)
    for _ in range(7):
        watch.observe(score=0.4)
    assert watch.close(5)
    assert len(collector.events()) == 7
    assert watch.observe(score=0.4) is False
    stats = watch.stats()
    assert stats.sent == 7
    assert stats.dropped_closed == 1
    assert watch.close() is True  # idempotent


def test_context_manager_closes(collector):
    with fast(collector.url, flush_interval=60) as watch:
        watch.observe(score=0.4)
    assert len(collector.events()) == 1
    assert not watch._thread.is_alive()


def test_sender_thread_id_names_a_thread_of_this_process_until_close(collector):
    import os

    watch = fast(collector.url)
    tid = watch.sender_thread_id
    assert isinstance(tid, int)
    assert os.path.exists(f"/proc/self/task/{tid}") or not os.path.exists("/proc/self/task")
    assert tid != threading.get_native_id()
    assert watch.close(5)
    assert watch.sender_thread_id is None


def test_observe_from_many_threads_counts_every_event(collector):
    watch = fast(collector.url, batch_size=50, max_buffer=100_000)

    def work():
        for _ in range(500):
            watch.observe(score=0.1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert watch.close(10)
    assert watch.stats().sent == 4000
    assert len(collector.events()) == 4000


@pytest.mark.parametrize(
    "kwargs",
    [dict(batch_size=0), dict(batch_size=1001), dict(max_buffer=5, batch_size=10),
     dict(flush_interval=0)],
)
def test_bad_settings_raise_at_construction(kwargs):
    with pytest.raises(ValueError):
        Watch("http://127.0.0.1:1", "m", **kwargs)


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "ftp://host", "http://"])
def test_bad_url_raises_at_construction(url):
    with pytest.raises(ValueError):
        Watch(url, "m")
