"""Turn the arguments of one `observe()` call into a wire event (a JSON-ready dict).

This runs on the sender thread, not in the caller's request, so `observe()` stays a
buffer append. An event that breaks the wire contract (docs: OBSERVATIONS-API) is
refused here and counted as invalid instead of being sent to be refused by the server.
"""

from __future__ import annotations

import math
from typing import Any, Optional

STATUSES = frozenset(("success", "error", "timeout"))
MAX_PREDICTION_ID_BYTES = 128
# JSON has no infinities; the largest finite double lands in the same (open-ended)
# reference bin as an infinity and is just as out of range.
_FLOAT_MAX = 1.7976931348623157e308


class InvalidEvent(ValueError):
    """An argument of `observe()` that the collector would refuse."""


def _number(value: Any, what: str) -> float:
    """A finite float from an int/float (numpy scalars included), or InvalidEvent."""
    if isinstance(value, (str, bytes)) or value is None:
        raise InvalidEvent(f"{what} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidEvent(f"{what} must be a number") from None
    if not math.isfinite(number):
        raise InvalidEvent(f"{what} must be finite")
    return number


def _feature_value(value: Any, name: str) -> Optional[float]:
    """None for a missing value (None or NaN); infinities clamp to the largest double."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise InvalidEvent(f"feature {name!r} must be a number or None")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidEvent(f"feature {name!r} must be a number or None") from None
    if number != number:  # NaN: missing, like the reference files read it
        return None
    if number == math.inf:
        return _FLOAT_MAX
    if number == -math.inf:
        return -_FLOAT_MAX
    return number


def _features(features: Any) -> dict:
    """The features as JSON-ready values, in place (observe() hands us its own copy)."""
    if type(features) is not dict:
        features = _name_map(features, "features")
    for name, v in features.items():
        if type(name) is not str:
            raise InvalidEvent("features keys must be strings")
        kind = type(v)
        # The common case stays cheap: a finite float (x - x is NaN for NaN and ±inf),
        # an int, or None go out as they are.
        if (kind is float and v - v == 0.0) or kind is int or v is None:
            continue
        features[name] = _feature_value(v, name)
    return features


def _name_map(mapping: Any, what: str) -> dict:
    if not isinstance(mapping, dict):
        try:
            mapping = dict(mapping)
        except (TypeError, ValueError):
            raise InvalidEvent(f"{what} must be a mapping of names") from None
    for key in mapping:
        if not isinstance(key, str):
            raise InvalidEvent(f"{what} keys must be strings")
    return mapping


def encode(
    when: float,
    score: Any,
    value: Any,
    features: Any,
    stages: Any,
    decision: Any,
    feature_times: Any,
    status: Any,
    prediction_id: Any,
    duration: Any = None,
) -> dict:
    """The wire event for one observation; raises InvalidEvent."""
    event: dict = {"time": _number(when, "time")}
    if event["time"] <= 0:
        raise InvalidEvent("time must be unix seconds (> 0)")
    if score is not None and value is not None:
        raise InvalidEvent("give score or value, not both")
    if score is not None:
        event["score"] = _number(score, "score")
    if value is not None:
        event["value"] = _number(value, "value")
    if features is not None:
        event["features"] = _features(features)
    if stages is not None:
        out = {}
        for stage, seconds in _name_map(stages, "stages").items():
            seconds = _number(seconds, f"stage {stage!r}")
            if seconds < 0:
                raise InvalidEvent(f"stage {stage!r} must be >= 0 seconds")
            out[stage] = seconds
        event["stages"] = out
    if feature_times is not None:
        event["feature_times"] = {
            group: _number(t, f"feature time {group!r}")
            for group, t in _name_map(feature_times, "feature_times").items()
        }
    if duration is not None:
        seconds = _number(duration, "duration")
        if seconds < 0:
            raise InvalidEvent("duration must be >= 0 seconds")
        event["duration"] = seconds
    if decision is not None:
        if not isinstance(decision, str):
            raise InvalidEvent("decision must be a string")
        event["decision"] = decision
    if status is not None:
        if not isinstance(status, str) or status not in STATUSES:
            raise InvalidEvent("status must be success, error or timeout")
        event["status"] = status
    if prediction_id is not None:
        if not isinstance(prediction_id, str):
            raise InvalidEvent("prediction_id must be a string")
        if not prediction_id:
            raise InvalidEvent("prediction_id must not be empty")
        if len(prediction_id.encode("utf-8")) > MAX_PREDICTION_ID_BYTES:
            raise InvalidEvent("prediction_id is longer than 128 bytes")
        event["prediction_id"] = prediction_id
    return event
