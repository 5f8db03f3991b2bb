"""Reads a batch replay's output directory as a JSON lines reader does (pandas here, as
a stand-in for Spark's json source) and checks what it finds.

usage: read_output.py OUT_DIR EXPECTED_EVENTS
"""
import glob
import json
import sys

import pandas as pd


def main():
    out_dir, expected = sys.argv[1], int(sys.argv[2])
    files = sorted(glob.glob(out_dir + "/*.json"))
    assert files, f"no output files in {out_dir}"
    df = pd.concat([pd.read_json(f, lines=True, dtype=False) for f in files], ignore_index=True)
    columns = ["event_id", "event_type", "ts", "location_id", "order_id", "sequence", "body"]
    assert list(df.columns) == columns, list(df.columns)
    assert len(df) == expected, (len(df), expected)
    assert str(df["sequence"].dtype) == "int64" and str(df["location_id"].dtype) == "int64"
    assert df["event_id"].is_unique
    # Each body is a JSON string holding an object.
    assert all(isinstance(json.loads(b), dict) for b in df["body"])
    ts = pd.to_datetime(df["ts"], format="%Y-%m-%d %H:%M:%S.%f")
    assert ts.is_monotonic_increasing
    print(f"read {len(df)} events from {len(files)} files")


if __name__ == "__main__":
    main()
