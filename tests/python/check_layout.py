"""Checks that a generated events.parquet reads in pyarrow and pandas with exactly the
column types of docs/batch-replay.md (the dataset), the same as the pandas-written fixture.

usage: check_layout.py GENERATED_DIR FIXTURE_EVENTS_PARQUET
"""
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

EXPECTED = {
    "order_id": pa.string(),
    "location_id": pa.int8(),
    "event_type_id": pa.int8(),
    "ts_seconds": pa.int64(),
    "sequence": pa.int8(),
    "customer_lat": pa.float32(),
    "customer_lon": pa.float32(),
    "customer_addr": pa.string(),
    "items_json": pa.string(),
    "route_json": pa.string(),
    "ping_lat": pa.float32(),
    "ping_lon": pa.float32(),
    "ping_progress": pa.float32(),
}


def types(path):
    schema = pq.read_schema(path)
    return [(f.name, f.type) for f in schema]


def main():
    generated, fixture = sys.argv[1] + "/events.parquet", sys.argv[2]
    got = types(generated)
    assert got == list(EXPECTED.items()), f"generated types {got}"
    assert got == types(fixture), "generated and pandas-written layouts differ"
    df = pd.read_parquet(generated)
    ref = pd.read_parquet(fixture)
    assert list(df.dtypes.astype(str)) == list(ref.dtypes.astype(str)), (df.dtypes, ref.dtypes)
    assert len(df) > 0 and df["order_id"].str.fullmatch(r"[A-Z0-9]{6}").all()
    assert df["event_type_id"].between(1, 8).all()
    locations = pd.read_parquet(sys.argv[1] + "/locations.parquet")
    assert list(locations["name"]) == ["San Francisco", "Silicon Valley", "Bellevue", "Chicago"]
    print(f"layout ok: {len(df)} rows, dtypes {dict(df.dtypes.astype(str))}")


if __name__ == "__main__":
    main()
