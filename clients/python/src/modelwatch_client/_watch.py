"""The `Watch`: a bounded buffer in the caller's thread, a sender thread behind it."""

from __future__ import annotations

import atexit
import collections
import http.client
import json
import logging
import os
import random
import threading
import time as _time
import urllib.parse
import weakref
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from ._events import encode

log = logging.getLogger("modelwatch_client")
# A collector that is down would otherwise log once per batch.
LOG_EVERY_SECONDS = 30.0

# The collector's default `--max-observation-batch`.
MAX_BATCH = 1000
# Answers worth retrying: the collector's queue is full, or it is (re)starting. Any
# other 4xx is final: the same batch would be refused again.
_RETRIED_STATUSES = (429, 500, 502, 503, 504)
_now = _time.time


class Stats(NamedTuple):
    """What happened to every `observe()` call so far (counts of events)."""

    sent: int
    """Accepted by the collector (its 202 answer's `accepted`)."""
    rejected_by_server: int
    """Refused by the collector (by index in a 202, or a whole 400/404/413/415 batch)."""
    invalid: int
    """Refused by the client itself: arguments the wire contract does not allow."""
    dropped_buffer_full: int
    """Not buffered because `max_buffer` events were already waiting."""
    dropped_send_failed: int
    """Given up after `max_retries` (collector unreachable, 5xx, or 429 throughout)."""
    dropped_closed: int
    """Observed after `close()`, or still buffered when `close()` timed out."""
    retries: int
    """Batch sends retried (429, 5xx, connection errors); not a count of events."""
    buffered: int
    """Waiting in the buffer now."""


class Watch:
    """Sends predictions to `POST {url}/v1/models/{model}/observations` in batches.

    `observe()` never blocks and never raises: it appends to a buffer of at most
    `max_buffer` events and returns. A daemon thread sends a batch when `batch_size`
    events are waiting or `flush_interval` seconds have passed, over one persistent
    HTTP/1.1 connection. A 429 (the collector's queue is full) or a failed connection
    is retried at most `max_retries` times with a capped exponential backoff (the
    collector's Retry-After is honoured up to `max_backoff`); meanwhile the buffer stays
    bounded and what does not fit is dropped and counted (see `stats()`).
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        timeout: float = 2.0,
        max_retries: int = 3,
        max_backoff: float = 5.0,
        close_timeout_at_exit: float = 2.0,
        headers: Optional[Mapping[str, str]] = None,
    ):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port][/prefix], got {url!r}")
        if not isinstance(model, str) or not model:
            raise ValueError("model must be the card's name")
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        if max_buffer < batch_size:
            raise ValueError("max_buffer must be at least batch_size")
        if flush_interval <= 0 or timeout <= 0 or max_retries < 0 or max_backoff < 0:
            raise ValueError("flush_interval and timeout must be > 0, retries >= 0")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        prefix = parts.path.rstrip("/")
        self._path = f"{prefix}/v1/models/{urllib.parse.quote(model, safe='')}/observations"
        self._headers = {"Content-Type": "application/json", **dict(headers or {})}
        self.model = model
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_backoff = max_backoff
        self._close_timeout_at_exit = close_timeout_at_exit
        self._start()
        ref = weakref.ref(self)
        atexit.register(_close_at_exit, ref)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: _restart_in_child(ref))

    def _start(self) -> None:
        """Fresh state and sender thread (at construction, and in a forked child)."""
        self._buffer: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._abort = threading.Event()
        self._closed = False
        self._closing = False
        self._flush_wanted = False
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._taken = 0  # events the sender has taken from the buffer
        self._finished = 0  # events taken whose fate is settled (counted in stats)
        self._counts = dict.fromkeys(Stats._fields[:-1], 0)
        self._conn: Optional[http.client.HTTPConnection] = None
        self._conn_used = False
        self._next_warning = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"modelwatch-client[{self.model}]", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------ the caller's side

    def observe(
        self,
        score: Any = None,
        value: Any = None,
        features: Optional[Mapping[str, Any]] = None,
        stages: Optional[Mapping[str, float]] = None,
        decision: Optional[str] = None,
        feature_times: Optional[Mapping[str, float]] = None,
        status: Optional[str] = None,
        prediction_id: Optional[str] = None,
        time: Optional[float] = None,
        duration: Optional[float] = None,
    ) -> bool:
        """Buffers one prediction; True when buffered, False when dropped (counted).

        `features` maps names to numbers; None or NaN is a missing value. `stages`
        maps stage names (queue, feature_fetch, inference, postprocess, or one the
        card declares) to seconds. `feature_times` maps feature groups to the unix
        time their values were computed. `time` is the prediction's unix time (now
        by default). `duration` is the end-to-end latency in seconds (the collector
        uses the sum of the stages when it is absent). The mappings are copied; validation happens on the sender
        thread and refusals count as `invalid`.
        """
        try:
            buffer = self._buffer
            if self._closed:
                self._count("dropped_closed")
                return False
            if len(buffer) >= self._max_buffer:
                self._count("dropped_buffer_full")
                return False
            buffer.append(
                (
                    _now() if time is None else time,
                    score,
                    value,
                    None if features is None else dict(features),
                    None if stages is None else dict(stages),
                    decision,
                    None if feature_times is None else dict(feature_times),
                    status,
                    prediction_id,
                    duration,
                )
            )
            if len(buffer) >= self._batch_size and not self._wake.is_set():
                self._wake.set()
            return True
        except Exception:  # noqa: BLE001 - never raise into the model server
            self._count("invalid")
            return False

    def flush(self, timeout: float = 5.0) -> bool:
        """Sends what is buffered now; True when all of it was settled within `timeout`.

        Settled means sent, refused or dropped: see `stats()` for which.
        """
        deadline = _now() + max(0.0, timeout)
        with self._lock:
            target = self._taken + len(self._buffer)
            self._flush_wanted = True
        self._wake.set()
        with self._lock:
            while self._finished < target:
                left = deadline - _now()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._progress.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Stops taking events, sends what is buffered, stops the sender thread.

        True when everything was settled in `timeout`; what was not is counted as
        `dropped_closed`. Idempotent.
        """
        if self._closed:
            return not self._thread.is_alive()
        self._closed = True
        self._closing = True
        self._wake.set()
        self._thread.join(max(0.0, timeout))
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join(self._timeout + 1.0)
        left = len(self._buffer)
        if left:
            self._buffer.clear()
            self._count("dropped_closed", left)
        return not self._thread.is_alive() and not left

    @property
    def sender_thread_id(self) -> Optional[int]:
        """The sender thread's native id (`threading.get_native_id()`), to attribute
        its CPU (`/proc/self/task/ID/stat`, py-spy); None once it has stopped."""
        thread = self._thread
        return thread.native_id if thread.is_alive() else None

    def stats(self) -> Stats:
        """Counts of events by outcome (see `Stats`)."""
        with self._lock:
            return Stats(**self._counts, buffered=len(self._buffer))

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _count(self, outcome: str, n: int = 1, settled: bool = False) -> None:
        with self._lock:
            self._counts[outcome] += n
            if settled:
                self._finished += n
                self._progress.notify_all()

    # ------------------------------------------------------------ the sender thread

    def _run(self) -> None:
        while not self._abort.is_set():
            timed_out = not self._wake.wait(self._flush_interval)
            self._wake.clear()
            with self._lock:
                partial_due = timed_out or self._flush_wanted or self._closing
                self._flush_wanted = False
            try:
                self._drain(partial_due)
            except Exception:  # noqa: BLE001 - keep the thread alive whatever happens
                log.exception("modelwatch client: sender error")
            if self._closing and not self._buffer:
                break
        self._disconnect()

    def _drain(self, partial_due: bool) -> None:
        """Sends full batches, and the last partial one when it is due."""
        buffer = self._buffer
        while buffer and not self._abort.is_set():
            if len(buffer) < self._batch_size and not partial_due:
                return
            taken: List[Tuple] = []
            popleft = buffer.popleft
            try:
                for _ in range(self._batch_size):
                    taken.append(popleft())
            except IndexError:
                pass
            with self._lock:
                self._taken += len(taken)
            events = []
            invalid = 0
            for args in taken:
                try:
                    events.append(encode(*args))
                except Exception:  # noqa: BLE001 - InvalidEvent, or a caller's odd object
                    invalid += 1
            if invalid:
                self._count("invalid", invalid, settled=True)
            if events:
                self._send(events)

    def _send(self, events: List[Dict[str, Any]]) -> None:
        n = len(events)
        try:
            body = json.dumps({"events": events}, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            if n == 1:
                self._count("invalid", 1, settled=True)
                return
            half = n // 2
            self._send(events[:half])
            self._send(events[half:])
            return
        payload = body.encode("utf-8")
        attempt = 0
        while True:
            stale = False
            try:
                status, answer, retry_after = self._post(payload)
            except (OSError, http.client.HTTPException) as err:
                stale = self._conn_used  # a reused keep-alive connection the peer closed
                self._disconnect()
                status, answer, retry_after = None, b"", None
                reason = f"{type(err).__name__}: {err}"
            if status == 202:
                self._settle_accepted(answer, n)
                return
            if status is not None and status not in _RETRIED_STATUSES:
                if status == 413 and n > 1:
                    half = n // 2
                    self._send(events[:half])
                    self._send(events[half:])
                    return
                self._warn(
                    "modelwatch client: %d events refused with HTTP %d: %s",
                    n, status, answer[:300].decode("utf-8", "replace"),
                )
                self._count("rejected_by_server", n, settled=True)
                return
            if status is not None:
                reason = f"HTTP {status}"
            if attempt >= self._max_retries or self._abort.is_set():
                self._warn("modelwatch client: %d events dropped after %d retries (%s)",
                           n, attempt, reason)
                self._count("dropped_send_failed", n, settled=True)
                return
            attempt += 1
            self._count("retries")
            if stale and attempt == 1:
                continue  # resend at once on a fresh connection
            delay = min(self._max_backoff, 0.1 * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = min(self._max_backoff, max(delay, retry_after))
            delay *= random.uniform(0.8, 1.0)
            if self._abort.wait(delay):
                self._count("dropped_send_failed", n, settled=True)
                return

    def _warn(self, msg: str, *args: Any) -> None:
        """A warning at most every LOG_EVERY_SECONDS; the counts are in stats()."""
        now = _time.monotonic()
        if now >= self._next_warning:
            self._next_warning = now + LOG_EVERY_SECONDS
            log.warning(msg + " (stats(): %s)", *args, self.stats())

    def _settle_accepted(self, answer: bytes, n: int) -> None:
        try:
            parsed = json.loads(answer)
            accepted = int(parsed["accepted"])
        except (ValueError, KeyError, TypeError):
            accepted = n
        # The answer lists at most 100 refusals; the count is what `accepted` leaves.
        accepted = min(max(accepted, 0), n)
        rejected = n - accepted
        if rejected:
            self._warn("modelwatch client: %d of %d events refused: %s", rejected, n,
                       answer[:300].decode("utf-8", "replace"))
        with self._lock:
            self._counts["sent"] += accepted
            self._counts["rejected_by_server"] += rejected
            self._finished += n
            self._progress.notify_all()

    def _post(self, payload: bytes) -> Tuple[int, bytes, Optional[float]]:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
            self._conn_used = False
        self._conn.request("POST", self._path, body=payload, headers=self._headers)
        response = self._conn.getresponse()
        answer = response.read()
        self._conn_used = True
        if response.will_close:
            self._disconnect()
        retry_after = None
        header = response.getheader("Retry-After")
        if header:
            try:
                retry_after = float(header)
            except ValueError:
                pass
        return response.status, answer, retry_after

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None


def _close_at_exit(ref: "weakref.ref[Watch]") -> None:
    watch = ref()
    if watch is not None:
        watch.close(watch._close_timeout_at_exit)


def _restart_in_child(ref: "weakref.ref[Watch]") -> None:
    """A forked worker gets its own buffer and thread (the parent's did not survive)."""
    watch = ref()
    if watch is not None and not watch._closed:
        watch._conn = None  # the parent's socket: leave it to the parent
        watch._start()
