"""The Spark source on a live clock, for benches/spark.rs: a query on a running server's
clock (`option("clock", URL)`), then the same query on its own clock (`speedMultiplier`),
each for SECONDS with a 1 s trigger and a sink that notes, for each event, how long after
its clock passed it the event reached the sink.

usage: python3 spark_live.py URL TOKEN DATASET SECONDS
Prints one JSON line: per query, rows, rows/s, the delay's p50 and p99 (seconds), and
Spark's own empty micro-batch time (the median of batches that read nothing).
"""

import datetime as _dt
import json
import os
import sys
import tempfile
import time
import urllib.request

url, token, dataset, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
SPEED = 3600.0
PEAK = "2024-02-02 17:30:00"

from pyspark.sql import SparkSession  # noqa: E402

from caspers_replay import CaspersDataSource  # noqa: E402


def clock(change=None):
    req = urllib.request.Request(f"{url}/v1/clock")
    if change is not None:
        req = urllib.request.Request(f"{url}/v1/clock", data=json.dumps(change).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def ts_seconds(ts):
    return _dt.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S.%f").replace(
        tzinfo=_dt.timezone.utc).timestamp()


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
spark.dataSource.register(CaspersDataSource)


def run(name, options, delays_at):
    """Starts a query; `delays_at(batch_id, now, work)` gives, for a batch that reached the
    sink at `now`, the function from an event's ts to its delay."""
    work = tempfile.mkdtemp(prefix=f"caspers-spark-live-{name}-")
    delays = []

    def sink(df, batch_id):
        rows = df.select("ts").collect()
        delay = delays_at(batch_id, time.time(), work)
        delays.extend(delay(ts_seconds(r.ts)) for r in rows)

    reader = spark.readStream.format("caspers")
    for k, v in options.items():
        reader = reader.option(k, v)
    query = (reader.load().writeStream.foreachBatch(sink)
             .option("checkpointLocation", os.path.join(work, "checkpoint"))
             .trigger(processingTime="1 second").start())
    return query, delays, work


def finish(name, query, delays, started):
    elapsed = time.time() - started
    query.stop()
    empty = [p["durationMs"]["triggerExecution"] / 1000 for p in query.recentProgress
             if p["numInputRows"] == 0]
    return {"query": name, "rows": len(delays), "rows_per_s": len(delays) / elapsed,
            "delay_p50": quantile(delays, 0.5), "delay_p99": quantile(delays, 0.99),
            "empty_batch": quantile(empty, 0.5), "empty_batches": len(empty)}


# The server's clock: paused at the peak, the query started (its first batches are empty),
# then 3600x. An event's delay: how far the server's clock has gone past it, in wall time.
clock({"seek": PEAK, "paused": True, "speed": SPEED})
def server_delays(_batch, _now, _work):
    sim_now = clock()["sim_time"]
    return lambda ts: (sim_now - ts) / SPEED


query, delays, _ = run("server", {"clock": url, "locationId": "1"}, server_delays)
time.sleep(8)
clock({"paused": False})
started = time.time()
time.sleep(seconds)
clock({"paused": True})
live = finish("server clock", query, delays, started)


# The source's own clock at the same speed: an event's delay is how long ago the source's
# clock (linear from its batch's end offset) passed it.
def own_delays(batch_id, now, work):
    with open(os.path.join(work, "checkpoint", "offsets", str(batch_id))) as f:
        end = json.loads(f.read().splitlines()[-1])
    sim_now = end["simulation_seconds"] + (now - end["wall_clock"]) * SPEED
    return lambda ts: (sim_now - ts) / SPEED


query, delays, _ = run("own", {"datasetPath": dataset, "simulationStartDay": "32",
                               "speedMultiplier": str(SPEED), "locationId": "1"}, own_delays)
time.sleep(8)
# (Its first batch is the catch-up to day 32 at this time of day: not a live delay.)
delays.clear()
started = time.time()
time.sleep(seconds)
own = finish("own clock (speedMultiplier)", query, delays, started)
spark.stop()
print(json.dumps([live, own]))
