"""Feast's own side of the Feast online store test (crates/modelwatch-cli/tests/redis.rs).

Usage: feast_repo.py REPO_DIR REDIS_PORT PROJECT ENTITIES_JSON

Writes a Feast feature repository for the fraud card's two store groups (feature
views `fraud_customer_stats` and `fraud_terminal_stats`), a Parquet file per view
with the given entities, runs `feast apply` and `feast materialize` into the
redis-server on 127.0.0.1:REDIS_PORT, then prints, as JSON, what Feast's own
`get_online_features` returns for every entity: the values and event times.

ENTITIES_JSON: {"customer": [{"id": ..., "event_time": unix_seconds, "values": [...]}],
                "terminal": [...]}, values in the card's feature order (null: missing).
"""

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pandas as pd

CUSTOMER = ["customer_nb_tx_1d", "customer_avg_amount_1d", "customer_nb_tx_7d",
            "customer_avg_amount_7d", "customer_nb_tx_30d", "customer_avg_amount_30d"]
TERMINAL = ["terminal_nb_tx_1d", "terminal_risk_1d", "terminal_nb_tx_7d",
            "terminal_risk_7d", "terminal_nb_tx_30d", "terminal_risk_30d"]
GROUPS = {
    "customer": ("fraud_customer_stats", "customer_id", CUSTOMER),
    "terminal": ("fraud_terminal_stats", "terminal_id", TERMINAL),
}

REPO = '''
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource
from feast.types import Float32, Float64, Int64
from feast.value_type import ValueType

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
terminal = Entity(name="terminal", join_keys=["terminal_id"], value_type=ValueType.STRING)

fraud_customer_stats = FeatureView(
    name="fraud_customer_stats",
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="customer_nb_tx_1d", dtype=Int64),
        Field(name="customer_avg_amount_1d", dtype=Float64),
        Field(name="customer_nb_tx_7d", dtype=Int64),
        Field(name="customer_avg_amount_7d", dtype=Float64),
        Field(name="customer_nb_tx_30d", dtype=Int64),
        Field(name="customer_avg_amount_30d", dtype=Float32),
    ],
    source=FileSource(path="{data}/customer.parquet", timestamp_field="event_time"),
)

fraud_terminal_stats = FeatureView(
    name="fraud_terminal_stats",
    entities=[terminal],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="terminal_nb_tx_1d", dtype=Int64),
        Field(name="terminal_risk_1d", dtype=Float64),
        Field(name="terminal_nb_tx_7d", dtype=Int64),
        Field(name="terminal_risk_7d", dtype=Float64),
        Field(name="terminal_nb_tx_30d", dtype=Int64),
        Field(name="terminal_risk_30d", dtype=Float64),
    ],
    source=FileSource(path="{data}/terminal.parquet", timestamp_field="event_time"),
)
'''


def seconds(stamp):
    """An event time as Feast returns it (Unix seconds, a Timestamp or a datetime)."""
    if stamp is None:
        return None
    if isinstance(stamp, (int, float)):
        return int(stamp)
    if hasattr(stamp, "seconds"):
        return int(stamp.seconds)
    return int(pd.Timestamp(stamp).timestamp())


def main():
    repo, port, project, entities_json = sys.argv[1:5]
    entities = json.loads(entities_json)
    os.makedirs(os.path.join(repo, "data"), exist_ok=True)
    data = os.path.join(repo, "data")
    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
        f.write(
            f"project: {project}\n"
            f"registry: {data}/registry.db\n"
            "provider: local\n"
            "online_store:\n"
            "  type: redis\n"
            f"  connection_string: \"127.0.0.1:{port}\"\n"
            "offline_store:\n"
            "  type: file\n"
            "entity_key_serialization_version: 3\n"
        )
    with open(os.path.join(repo, "features.py"), "w") as f:
        f.write(REPO.replace("{data}", data))
    for group, (view, key, names) in GROUPS.items():
        rows = entities[group]
        frame = pd.DataFrame({
            key: [r["id"] for r in rows],
            "event_time": [datetime.fromtimestamp(r["event_time"], tz=timezone.utc) for r in rows],
        })
        for i, name in enumerate(names):
            column = [r["values"][i] for r in rows]
            if name.startswith(("customer_nb_tx", "terminal_nb_tx")):
                frame[name] = pd.array([None if v is None else int(v) for v in column], dtype="Int64")
            elif name == "customer_avg_amount_30d":
                frame[name] = pd.array(column, dtype="float32")
            else:
                frame[name] = pd.array(column, dtype="float64")
        frame.to_parquet(os.path.join(data, f"{group}.parquet"))
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    quiet = dict(cwd=repo, check=True, stdout=sys.stderr)
    subprocess.run([feast, "apply"], **quiet)
    times = [r["event_time"] for g in entities.values() for r in g]
    start = datetime.fromtimestamp(min(times) - 3600, tz=timezone.utc)
    end = datetime.fromtimestamp(max(times) + 3600, tz=timezone.utc)
    subprocess.run([feast, "materialize", start.isoformat(), end.isoformat()], **quiet)

    from feast import FeatureStore

    store = FeatureStore(repo_path=repo)
    out = {}
    for group, (view, key, names) in GROUPS.items():
        ids = [r["id"] for r in entities[group]] + [entities[group][0]["id"] + "-unknown"]
        response = store.get_online_features(
            features=[f"{view}:{n}" for n in names],
            entity_rows=[{key: i} for i in ids],
        ).to_dict(include_event_timestamps=True)
        out[group] = []
        for row, entity in enumerate(ids):
            values = [response[n][row] for n in names]
            stamps = [response[f"{n}__ts"][row] for n in names if f"{n}__ts" in response]
            known = any(v is not None for v in values)
            stamp = next((s for s in stamps if s is not None), None) if known else None
            out[group].append({
                "id": entity,
                "values": [None if v is None else float(v) for v in values],
                "event_time": seconds(stamp),
            })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
