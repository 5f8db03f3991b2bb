"""The `caspers` PySpark source in real PySpark (local mode), driven by tests/spark.rs.

usage: python3 spark_source.py CASE ARGS...
  seed-runs DATASET SEED_OUTPUT WORK    three pinned availableNow runs on one checkpoint
                                        emit what the seed emitted, event for event
  killed DATASET WORK                   a query killed mid-batch and restarted on its
                                        checkpoint ends with every event exactly once
  query DATASET WORK                    (the killed test's child: one availableNow run)
  batch DATASET                         spark.read with locationId returns that location
  errors DATASET BAD_DATASET            clear errors for a bad path, option and dataset
  live URL WORK DATASET LOCATIONS       two queries on a live server's clock (one reading
                                        from the server, one from datasetPath): prints
                                        `started`, then on `stop N` waits until both have
                                        read emission N, stops them and prints `stopped`;
                                        each batch's rows go to WORK/<query>/<batch>.jsonl
Prints what it checked; exits non-zero on the first failure.
"""

import glob
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

SOURCE_OPTIONS = {"simulationStartDay": "0", "speedMultiplier": "60"}


def check(ok, what):
    if not ok:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}", flush=True)


def session():
    from pyspark.sql import SparkSession

    from caspers_replay import CaspersDataSource

    spark = (SparkSession.builder.master("local[2]")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "2")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark.dataSource.register(CaspersDataSource)
    return spark


def stream(spark, dataset, options):
    reader = spark.readStream.format("caspers").option("datasetPath", dataset)
    for k, v in options.items():
        reader = reader.option(k, v)
    return reader.load()


def run_available_now(spark, dataset, work, options):
    query = (stream(spark, dataset, options).writeStream.format("json")
             .option("path", os.path.join(work, "out"))
             .option("checkpointLocation", os.path.join(work, "checkpoint"))
             .trigger(availableNow=True).start())
    query.awaitTermination()
    return [p["numInputRows"] for p in query.recentProgress if p["numInputRows"]]


def batch_files(out, batch):
    """The files the JSON sink committed for a batch, in partition order."""
    with open(os.path.join(out, "_spark_metadata", str(batch))) as f:
        lines = f.read().splitlines()[1:]
    paths = [json.loads(line)["path"] for line in lines]
    return sorted((p.replace("file://", "") for p in paths), key=os.path.basename)


def lines_of(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out.extend(line for line in f.read().splitlines() if line)
    return out


def f32(value):
    """Floats compared as float32 (the seed printed float32 values widened to double)."""
    if isinstance(value, float):
        return struct.unpack("f", struct.pack("f", value))[0]
    if isinstance(value, list):
        return [f32(v) for v in value]
    if isinstance(value, dict):
        return {k: f32(v) for k, v in value.items()}
    return value


def same_event(ours, seed):
    a, b = json.loads(ours), json.loads(seed)
    if list(a) != list(b):
        return f"fields {list(a)} != {list(b)}"
    for key in ("event_type", "ts", "location_id", "order_id", "sequence"):
        if a[key] != b[key]:
            return f"{key}: {a[key]!r} != {b[key]!r}"
    if f32(json.loads(a["body"])) != f32(json.loads(b["body"])):
        return f"body: {a['body']} != {b['body']}"
    return None


def seed_runs(dataset, seed_output, work):
    spark = session()
    out = os.path.join(work, "out")
    for k, now in enumerate(["2026-11-24T18:00:00Z", "2026-11-24T18:05:00Z",
                             "2026-11-24T18:10:00Z"]):
        rows = run_available_now(spark, dataset, work, {**SOURCE_OPTIONS, "now": now})
        ours = lines_of(batch_files(out, k))
        with open(os.path.join(seed_output, f"run{k + 1}.jsonl")) as f:
            seed = f.read().splitlines()
        check(rows == [len(seed)] and len(ours) == len(seed),
              f"run {k + 1} at {now}: one batch of {len(seed)} events, as the seed ({rows}, {len(ours)})")
        for i, (a, b) in enumerate(zip(ours, seed)):
            diff = same_event(a, b)
            if diff:
                check(False, f"run {k + 1} event {i}: {diff}")
        check(True, f"run {k + 1}: every event as the seed's, in the same order")
    again = run_available_now(spark, dataset, work, {**SOURCE_OPTIONS, "now": "2026-11-24T18:10:00Z"})
    check(again == [], "a run at the same instant emits nothing")
    spark.stop()


def query(dataset, work):
    spark = session()
    run_available_now(spark, dataset, work, {"simulationStartDay": "3", "speedMultiplier": "60",
                                             "now": "2026-11-24T12:00:00Z", "numPartitions": "4"})
    spark.stop()


def engine_ids(dataset, start, end):
    """Event ids of [start, end), read from the engine directly (no Spark)."""
    import pyarrow.ipc

    from caspers_replay._engine import engine_path

    data = subprocess.run([engine_path(), "spark-read", "--dataset", dataset, "--from", str(start),
                           "--to", str(end)], capture_output=True, check=True).stdout
    table = pyarrow.ipc.open_stream(data).read_all()
    return table.column("event_id").to_pylist()


def killed(dataset, work):
    checkpoint = os.path.join(work, "checkpoint")
    me = [sys.executable, os.path.abspath(__file__), "query", dataset, work]
    child = subprocess.Popen(me, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    planned = os.path.join(checkpoint, "offsets", "0")
    deadline = time.time() + 120
    while not os.path.exists(planned) and time.time() < deadline and child.poll() is None:
        time.sleep(0.01)
    check(os.path.exists(planned), "the first batch was planned")
    # Mid-batch: planned, its files being written, not committed.
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    committed = os.path.exists(os.path.join(checkpoint, "commits", "0"))
    check(not committed, "the query was killed before its batch committed")
    subprocess.run(me, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check(os.path.exists(os.path.join(checkpoint, "commits", "0")), "the restarted query committed it")
    with open(planned) as f:
        source_offset = json.loads(f.read().splitlines()[-1])
    spark = session()
    got = [r.event_id for r in spark.read.json(os.path.join(work, "out")).select("event_id").collect()]
    from caspers_replay._engine import run_json

    initial = run_json(["spark-offset", "--dataset", dataset, "--start-day", "3"])
    want = engine_ids(dataset, initial["simulation_seconds"], source_offset["simulation_seconds"])
    check(len(want) > 10000, f"a long first window ({len(want)} events)")
    check(len(got) == len(set(got)), f"no event twice ({len(got)} rows, {len(set(got))} distinct)")
    check(sorted(got) == sorted(want), f"every event of the window once ({len(got)} of {len(want)})")
    spark.stop()


def live_query(url, work, trigger):
    """(The live-killed test's child: a query on the clock at URL into a file sink.)"""
    spark = session()
    writer = (spark.readStream.format("caspers").option("clock", url).load().writeStream
              .format("json").option("path", os.path.join(work, "out"))
              .option("checkpointLocation", os.path.join(work, "checkpoint")))
    if trigger == "once":
        writer.trigger(availableNow=True).start().awaitTermination()
    else:
        writer.trigger(processingTime="500 milliseconds").start().awaitTermination()
    spark.stop()


def live_killed(url, token, work):
    """A query on a live clock killed mid-batch and restarted on its checkpoint: its file
    sink holds every event the clock emitted over the span once."""
    import urllib.request

    def clock(change):
        req = urllib.request.Request(f"{url}/v1/clock", data=json.dumps(change).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        urllib.request.urlopen(req).read()

    checkpoint = os.path.join(work, "checkpoint")
    me = [sys.executable, os.path.abspath(__file__), "live-query", url, work]
    child = subprocess.Popen(me + ["running"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    offsets = os.path.join(checkpoint, "offsets")
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(offsets, "0")) and time.time() < deadline:
        time.sleep(0.05)
    check(os.path.exists(os.path.join(offsets, "0")), "the first batch was planned")
    clock({"speed": 3600, "paused": False})
    # Killed as soon as a batch with events is planned, before it commits.
    while not os.path.exists(os.path.join(offsets, "2")) and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    clock({"paused": True})
    check(not os.path.exists(os.path.join(checkpoint, "commits", "2")),
          "the query was killed before its batch committed")
    subprocess.run(me + ["once"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    batches = sorted(int(n) for n in os.listdir(offsets) if n.isdigit())
    emitted = []
    for n in (batches[0], batches[-1]):
        with open(os.path.join(offsets, str(n))) as f:
            emitted.append(json.loads(f.read().splitlines()[-1])["emitted"])
    check(all(os.path.exists(os.path.join(checkpoint, "commits", str(n))) for n in batches),
          f"the restarted query committed every batch ({batches})")
    spark = session()
    got = [r.event_id for r in spark.read.json(os.path.join(work, "out")).select("event_id").collect()]
    import pyarrow.ipc

    with urllib.request.urlopen(f"{url}/v1/history?from={emitted[0]}&to={emitted[1]}") as r:
        want = pyarrow.ipc.open_stream(r.read()).read_all().column("event_id").to_pylist()
    check(len(want) > 100, f"the span holds events ({len(want)})")
    check(len(got) == len(set(got)), f"no event twice ({len(got)} rows, {len(set(got))} distinct)")
    check(sorted(got) == sorted(want), f"every event of the span once ({len(got)} of {len(want)})")
    spark.stop()


def live_errors(url, dataset, other_dataset):
    """One-line errors for a live clock: an ended session, a session that never was, a
    server that is not a caspers-replay one, another dataset."""
    import http.server
    import threading
    import urllib.request

    class NotOurs(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"hello": "world"}')

        def log_message(self, *args):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), NotOurs)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    req = urllib.request.Request(f"{url}/v1/sessions", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    made = json.loads(urllib.request.urlopen(req).read())
    req = urllib.request.Request(f"{url}{made['urls']['session']}", method="DELETE",
                                 headers={"Authorization": f"Bearer {made['token']}"})
    urllib.request.urlopen(req).read()
    spark = session()

    def message(**options):
        reader = spark.readStream.format("caspers")
        for k, v in options.items():
            reader = reader.option(k, v)
        work = tempfile.mkdtemp(prefix="caspers-live-errors-")
        try:
            (reader.load().writeStream.format("json").option("path", work + "/out")
             .option("checkpointLocation", work + "/checkpoint")
             .trigger(availableNow=True).start().awaitTermination())
        except Exception as e:  # Spark wraps what the source raised
            return str(e)
        return None

    for what, options, expected in [
        ("an ended session", {"clock": f"{url}{made['urls']['session']}"}, "has ended"),
        ("a session that never was", {"clock": f"{url}/v1/sessions/nope"}, "no session nope"),
        ("a server that is not caspers-replay",
         {"clock": f"http://127.0.0.1:{other.server_port}"}, "is not a caspers-replay server"),
        ("another dataset", {"clock": url, "datasetPath": other_dataset},
         f"datasetPath {other_dataset} is dataset"),
    ]:
        text = message(**options)
        check(text is not None and expected in text,
              f"{what}: Spark's error says {expected!r}" + ("" if text and expected in text else f" ({text})"))
    check(message(clock=url, datasetPath=dataset) is None, "the server's own dataset is taken")
    spark.stop()
    other.shutdown()


def batch(dataset):
    spark = session()
    df = spark.read.format("caspers").option("datasetPath", dataset).option("locationId", "2").load()
    rows = df.groupBy("location_id").count().collect()
    check([r.location_id for r in rows] == [2], f"only location 2 ({rows})")
    everything = spark.read.format("caspers").option("datasetPath", dataset).load()
    total = everything.count()
    from caspers_replay._engine import run_json

    bounds = run_json(["spark-offset", "--dataset", dataset, "--bounds"])
    want = len(engine_ids(dataset, bounds["start"], bounds["end"]))
    check(total == want, f"all {want} events without a filter ({total})")
    check(rows[0]["count"] == everything.filter("location_id = 2").count(),
          f"location 2's {rows[0]['count']} events, the same as filtered in Spark")
    check(df.schema.simpleString() ==
          "struct<event_id:string,event_type:string,ts:string,location_id:int,order_id:string,sequence:int,body:string>",
          "the seed's schema")
    spark.stop()


def errors(dataset, bad_dataset):
    spark = session()

    def message(fn):
        try:
            fn()
        except Exception as e:  # Spark wraps what the source raised
            return str(e)
        return None

    def batch_read(path, **options):
        reader = spark.read.format("caspers").option("datasetPath", path)
        for k, v in options.items():
            reader = reader.option(k, v)
        return lambda: reader.load().count()

    def stream_run(path, **options):
        return lambda: run_available_now(spark, path, "/tmp/caspers-errors-" + str(os.getpid()),
                                         {**SOURCE_OPTIONS, **options})

    def live_run(**options):
        def run():
            reader = spark.readStream.format("caspers")
            for k, v in options.items():
                reader = reader.option(k, v)
            work = "/tmp/caspers-errors-live-" + str(os.getpid())
            query = (reader.load().writeStream.format("json").option("path", work + "/out")
                     .option("checkpointLocation", work + "/checkpoint")
                     .trigger(availableNow=True).start())
            query.awaitTermination()
        return run

    for what, fn, expected in [
        ("a missing dataset (batch)", batch_read("/nonexistent/caspers"), "no such dataset directory"),
        ("a missing dataset (stream)", stream_run("/nonexistent/caspers"), "no such dataset directory"),
        ("a bad option value", batch_read(dataset, speedMultiplier="fast"),
         "option speedMultiplier: expected a number above 0, not 'fast'"),
        ("a start day outside the dataset", stream_run(dataset, simulationStartDay="400"),
         "simulationStartDay 400 is outside the dataset"),
        ("a damaged dataset", batch_read(bad_dataset), "events.parquet"),
        ("an unknown option", batch_read(dataset, speedMultiplyer="2"),
         "unknown option 'speedmultiplyer': the caspers source knows"),
        ("clock with the source's own clock", stream_run(dataset, clock="http://127.0.0.1:9"),
         "options clock and simulationStartDay contradict"),
        ("a clock that is not a URL", live_run(clock="127.0.0.1:9"), "option clock: expected"),
        ("an unreachable server", live_run(clock="http://127.0.0.1:9", clockTimeoutSeconds="1"),
         "the server at http://127.0.0.1:9 did not answer for 1 s (last error:"),
    ]:
        text = message(fn)
        check(text is not None and expected in text,
              f"{what}: Spark's error says {expected!r}" + ("" if text and expected in text else f" ({text})"))
    spark.stop()


def live(url, work, dataset, locations):
    spark = session()
    queries = {}
    for name, extra in [("server", {}), ("local", {"datasetPath": dataset})]:
        reader = (spark.readStream.format("caspers").option("clock", url)
                  .option("locationId", locations))
        for k, v in extra.items():
            reader = reader.option(k, v)
        out = os.path.join(work, name)
        os.makedirs(out, exist_ok=True)

        def write(df, batch_id, out=out):
            rows = df.collect()
            with open(os.path.join(out, f"{batch_id:06d}.jsonl"), "w") as f:
                for r in rows:
                    f.write(json.dumps(r.asDict()) + "\n")

        queries[name] = (reader.load().writeStream.foreachBatch(write)
                         .option("checkpointLocation", os.path.join(work, name + "-checkpoint"))
                         .trigger(processingTime="300 milliseconds").start())

    def emitted_read(query):
        progress = query.lastProgress
        if not progress:
            return None
        end = progress["sources"][0]["endOffset"]
        end = json.loads(end) if isinstance(end, str) else end
        return end["emitted"] if end else None

    deadline = time.time() + 120
    while any(emitted_read(q) is None for q in queries.values()):
        check(time.time() < deadline, "both queries started")
        time.sleep(0.1)
    print("started", flush=True)
    target = int(sys.stdin.readline().split()[1])
    deadline = time.time() + 120
    while any((emitted_read(q) or 0) < target for q in queries.values()):
        check(time.time() < deadline, f"both queries read up to emission {target}")
        time.sleep(0.1)
    for q in queries.values():
        q.stop()
    print("stopped", flush=True)
    spark.stop()


if __name__ == "__main__":
    case, args = sys.argv[1], sys.argv[2:]
    {"seed-runs": seed_runs, "killed": killed, "query": query, "batch": batch, "errors": errors,
     "live": live, "live-query": live_query, "live-killed": live_killed,
     "live-errors": live_errors}[case](*args)
