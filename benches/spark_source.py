"""One catch-up through Spark for benches/spark.rs: availableNow, JSON sink, local[2],
the clock pinned, with this package's source or the seed's own (its class taken at run
time from the seed's notebook, whose path CASPERS_SEED_NOTEBOOK gives, its clock pinned the
same way).

usage: python3 spark_source.py ours|seed DATASET OUT_DIR START_DAY NOW
Prints one JSON line: rows, seconds in the source's read, seconds in all.
"""

import datetime as _dt
import json
import os
import sys
import time

STARTED = time.perf_counter()
which, dataset, out, start_day, now = sys.argv[1:6]
READ_LOG = os.path.join(out, "read-seconds.log")
os.makedirs(out, exist_ok=True)


def log_read(seconds):
    with open(READ_LOG, "a") as f:
        f.write(f"{seconds}\n")


def ours():
    from caspers_replay import CaspersDataSource, CaspersStreamReader

    class TimedReader(CaspersStreamReader):
        def read(self, partition):
            # Time inside the engine's batches only, not Spark's work between them.
            it, spent = iter(partition.read()), 0.0
            while True:
                t = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    log_read(spent + time.perf_counter() - t)
                    return
                spent += time.perf_counter() - t
                yield batch

    class Timed(CaspersDataSource):
        def streamReader(self, schema):
            return TimedReader(self.options)

    return Timed, {"now": now}


def seed():
    # The seed's notebook is not in this repository: benches/spark.rs passes its path.
    notebook = os.environ["CASPERS_SEED_NOTEBOOK"]
    text = open(notebook, encoding="utf-8").read()
    start = text.index("class CaspersDataSource(DataSource):")
    end = text.index("print(", text.index("return rows", start))
    pinned = _dt.datetime.fromisoformat(now.replace("Z", "+00:00")).replace(tzinfo=None)

    class PinnedDatetime(_dt.datetime):
        @classmethod
        def utcnow(cls):
            return pinned

    import pandas as pd
    from pyspark.sql import Row
    from pyspark.sql.datasource import DataSource, DataSourceStreamReader
    from pyspark.sql.types import IntegerType, StringType, StructField, StructType
    import uuid

    namespace = {"__name__": "seed_source", "DataSource": DataSource,
                 "DataSourceStreamReader": DataSourceStreamReader, "StructType": StructType,
                 "StructField": StructField, "StringType": StringType, "IntegerType": IntegerType,
                 "Row": Row, "datetime": PinnedDatetime, "timedelta": _dt.timedelta, "pd": pd,
                 "json": json, "uuid": uuid, "time": time, "log_read": log_read}
    exec(text[start:end], namespace)
    exec(
        "class TimedReader(CaspersStreamReader):\n"
        "    def read(self, start_offset):\n"
        "        t = time.perf_counter()\n"
        "        result = super().read(start_offset)\n"
        "        log_read(time.perf_counter() - t)\n"
        "        return result\n"
        "class Timed(CaspersDataSource):\n"
        "    def simpleStreamReader(self, schema):\n"
        "        return TimedReader(schema, self.options)\n",
        namespace,
    )
    return namespace["Timed"], {}


from pyspark.sql import SparkSession  # noqa: E402

source, extra = {"ours": ours, "seed": seed}[which]()
# The seed's simple reader holds a whole window in the driver: 1 GB of heap (the default)
# runs out on this catch-up, so both runs get 6 GB.
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.driver.memory", "6g")
         .config("spark.sql.shuffle.partitions", "2").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
spark.dataSource.register(source)
reader = (spark.readStream.format("caspers").option("datasetPath", dataset)
          .option("simulationStartDay", start_day).option("speedMultiplier", "60"))
for k, v in extra.items():
    reader = reader.option(k, v)
query = (reader.load().writeStream.format("json").option("path", os.path.join(out, "json"))
         .option("checkpointLocation", os.path.join(out, "checkpoint"))
         .trigger(availableNow=True).start())
query.awaitTermination()
rows = sum(p["numInputRows"] for p in query.recentProgress)
spark.stop()
reads = [0.0]
if os.path.exists(READ_LOG):
    with open(READ_LOG) as f:
        reads = [float(line) for line in f if line.strip()]
print(json.dumps({"rows": rows, "read_seconds": sum(reads), "read_max": max(reads),
                  "seconds": time.perf_counter() - STARTED}))
