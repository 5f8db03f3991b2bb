"""A streaming query on a running caspers-replay server's clock: every micro-batch holds what
the server emitted since the last one, so the pipeline follows the presenter (nothing while
paused, more at a higher speed, the new place after a seek). Prints each batch's span of
emission and its events' count and time range.

    caspers-replay serve &           # or any running server (its URL below)
    python3 examples/live_clock.py --clock http://127.0.0.1:8080 [--location-id 1] [--seconds 60]

`--clock` may be a session's URL too (http://HOST:PORT/v1/sessions/ID), and `--dataset`
reads the events from a local copy of the server's dataset instead of over HTTP.
"""

import argparse
import json
import tempfile
import time

from caspers_replay import CaspersDataSource
from pyspark.sql import SparkSession

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--clock", default="http://127.0.0.1:8080")
parser.add_argument("--location-id", help="one kitchen's id, or several comma-separated")
parser.add_argument("--dataset", help="the server's dataset, read locally")
parser.add_argument("--seconds", type=float, default=60, help="how long to run")
args = parser.parse_args()

spark = (SparkSession.builder.master("local[2]").appName("caspers-live")
         .config("spark.ui.enabled", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
spark.dataSource.register(CaspersDataSource)

reader = spark.readStream.format("caspers").option("clock", args.clock)
if args.location_id:
    reader = reader.option("locationId", args.location_id)
if args.dataset:
    reader = reader.option("datasetPath", args.dataset)


def show(batch, batch_id):
    rows = batch.selectExpr("count(*) AS n", "min(ts) AS first", "max(ts) AS last").collect()[0]
    print(f"batch {batch_id}: {rows.n} events" + (f", {rows.first} .. {rows.last}" if rows.n else ""),
          flush=True)


query = (reader.load().writeStream.foreachBatch(show)
         .option("checkpointLocation", tempfile.mkdtemp(prefix="caspers-live-"))
         .trigger(processingTime="1 second").start())


def emitted(offset):
    """An offset's emission count (Spark reports offsets as JSON text, or null)."""
    offset = json.loads(offset) if isinstance(offset, str) else offset
    return (offset or {}).get("emitted")


deadline, shown = time.time() + args.seconds, None
while time.time() < deadline and query.isActive:
    time.sleep(0.5)
    progress = query.lastProgress
    if progress and progress["batchId"] != shown:
        shown = progress["batchId"]
        source = progress["sources"][0]
        print(f"  batch {shown} covered emission {emitted(source['startOffset'])} .. "
              f"{emitted(source['endOffset'])}", flush=True)
query.stop()
spark.stop()
