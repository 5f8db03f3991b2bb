"""Casper's Kitchens - canonical data replay, the seed notebook's steps as a script.

The only change a notebook needs is its import: the `CaspersDataSource` class it defined
(pandas, one Python object per event) now comes from `caspers_replay`, and the Rust
engine does the work. Registration, options, the availableNow trigger, the JSON sink and
the checkpoint are as they were.

    python3 examples/replay_notebook.py --dataset DIR --out DIR --checkpoint DIR \
        [--start-day 20] [--speed 60] [--now 2026-11-24T18:00:00Z]

(In Databricks, take the parameters from the widgets as the seed does.)
"""

import argparse
import os

# The one changed line: the data source comes from the package.
from caspers_replay import CaspersDataSource
from pyspark.sql import SparkSession

# Configuration
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dataset", default=os.path.abspath("../data/canonical/canonical_dataset"))
parser.add_argument("--out", required=True, help="where the JSON files go (the seed's volume)")
parser.add_argument("--checkpoint", required=True)
parser.add_argument("--start-day", type=int, default=20)
parser.add_argument("--speed", type=float, default=1.0)
parser.add_argument("--now", help="pin the wall clock (RFC 3339), for reproducible runs")
args = parser.parse_args()

print("Configuration:")
print(f"   Start Day: {args.start_day}")
print(f"   Speed Multiplier: {args.speed}x")
print(f"   Dataset Path: {args.dataset}")
print(f"   Output Path: {args.out}")
print(f"   Checkpoint Path: {args.checkpoint}")

spark = SparkSession.builder.appName("caspers-replay").getOrCreate()

# Register the data source with Spark
spark.dataSource.register(CaspersDataSource)

# Create the streaming DataFrame
reader = (spark.readStream.format("caspers")
          .option("datasetPath", args.dataset)
          .option("simulationStartDay", str(args.start_day))
          .option("speedMultiplier", str(args.speed)))
if args.now:
    reader = reader.option("now", args.now)
caspers_stream = reader.load()
caspers_stream.printSchema()

# Write the stream as JSON files: availableNow processes what is due since the last run
# (the checkpoint says where that was) and stops, as a scheduled notebook wants.
query = (caspers_stream.writeStream
         .format("json")
         .option("path", args.out)
         .option("checkpointLocation", args.checkpoint)
         .trigger(availableNow=True)
         .start())
query.awaitTermination()
rows = sum(p["numInputRows"] for p in query.recentProgress)
print(f"Streaming query complete: {rows} events")

# Verify the output
json_files = [f for f in os.listdir(args.out) if f.endswith(".json")]
print(f"Total JSON files in the output: {len(json_files)}")
for name in sorted(json_files)[:5]:
    print(f"   {name}")
spark.stop()
