"""`spark.readStream.format("caspers")`: the seed's PySpark source, same name, options,
schema and windows, with the events made by the caspers-replay Rust engine and handed to
Spark as Arrow record batches.

    from caspers_replay import CaspersDataSource
    spark.dataSource.register(CaspersDataSource)
    spark.readStream.format("caspers").option("datasetPath", path).load()

Options (as the seed's): datasetPath, simulationStartDay (default 20), speedMultiplier
(default 1.0); and loop, shiftToToday (true/false), now (pins the wall clock, RFC 3339),
locationId (one id or several, comma-separated: filtered in the engine) and numPartitions
(how many Spark tasks read a long window, default 2).

On a live server's clock instead of the source's own: clock (the server's URL, or a
session's, http://HOST:PORT/v1/sessions/ID) and clockTimeoutSeconds (how long to wait for
an unreachable server, default 60). Each micro-batch then holds what the server emitted
since the last one, as its SSE subscribers with the same locationId got it: nothing while
the presenter pauses, more at a higher speed, and a seek's new place.
"""

from dataclasses import dataclass
from typing import Iterator, List, Optional

from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    InputPartition,
)
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from . import _clock
from ._engine import CaspersError, offset_args, read_batches, run_json

__all__ = ["CaspersDataSource", "CaspersError", "SCHEMA"]

#: The seed's schema, column for column.
SCHEMA = StructType([
    StructField("event_id", StringType(), False),
    StructField("event_type", StringType(), False),
    StructField("ts", StringType(), False),
    StructField("location_id", IntegerType(), False),
    StructField("order_id", StringType(), False),
    StructField("sequence", IntegerType(), False),
    StructField("body", StringType(), False),
])

#: A window shorter than this is read by one task.
_SPLIT_SECONDS = 2 * 3600


def _bad(name: str, value: str, expected: str) -> CaspersError:
    return CaspersError(f"option {name}: expected {expected}, not {value!r}")


def _flag(options, name: str) -> bool:
    value = str(options.get(name, "false")).strip().lower()
    if value not in ("true", "false"):
        raise _bad(name, value, "true or false")
    return value == "true"


#: Every option the source knows.
KNOWN_OPTIONS = ("datasetPath", "simulationStartDay", "speedMultiplier", "loop", "shiftToToday",
                 "now", "locationId", "numPartitions", "clock", "clockTimeoutSeconds")
#: The options that shape the source's own clock, which `clock` replaces.
_OWN_CLOCK = ("simulationStartDay", "speedMultiplier", "shiftToToday", "now", "loop")


@dataclass(frozen=True)
class Options:
    dataset: str
    start_day: int
    speed: float
    looping: bool
    shift_to_today: bool
    now: Optional[str]
    location_ids: Optional[str]
    partitions: int
    clock: Optional[str]
    clock_timeout: float

    @staticmethod
    def parse(options) -> "Options":
        known = {k.lower(): k for k in KNOWN_OPTIONS}
        for name in options.keys():
            if name.lower() not in known and name.lower() != "path":
                raise CaspersError(
                    f"unknown option {name!r}: the caspers source knows {', '.join(KNOWN_OPTIONS)}")
        clock = options.get("clock")
        if clock is not None:
            for name in _OWN_CLOCK:
                if options.get(name) is not None:
                    raise CaspersError(
                        f"options clock and {name} contradict: with clock, the server's clock "
                        f"sets the time; leave {name} out")
            _clock.prefix_of(str(clock))
        timeout_text = str(options.get("clockTimeoutSeconds", "60")).strip()
        try:
            clock_timeout = float(timeout_text)
        except ValueError:
            raise _bad("clockTimeoutSeconds", timeout_text, "a number of seconds") from None
        day = str(options.get("simulationStartDay", "20")).strip()
        if not day.isdigit():
            raise _bad("simulationStartDay", day, "a day of the dataset (0, 1, ...)")
        speed_text = str(options.get("speedMultiplier", "1.0")).strip()
        try:
            speed = float(speed_text)
        except ValueError:
            raise _bad("speedMultiplier", speed_text, "a number above 0") from None
        if not speed > 0 or speed == float("inf"):
            raise _bad("speedMultiplier", speed_text, "a number above 0")
        locations = options.get("locationId")
        if locations is not None:
            ids = [part.strip() for part in str(locations).split(",")]
            if not all(part.isdigit() for part in ids):
                raise _bad("locationId", locations, "a location id or several, comma-separated")
            locations = ",".join(ids)
        parts = str(options.get("numPartitions", "2")).strip()
        if not parts.isdigit() or int(parts) < 1:
            raise _bad("numPartitions", parts, "a whole number of at least 1")
        return Options(
            dataset=str(options.get("datasetPath", "./canonical_dataset")),
            start_day=int(day),
            speed=speed,
            looping=_flag(options, "loop"),
            shift_to_today=_flag(options, "shiftToToday"),
            now=options.get("now"),
            location_ids=locations,
            partitions=int(parts),
            clock=str(clock) if clock is not None else None,
            clock_timeout=clock_timeout,
        )

    def offset_args(self) -> List[str]:
        return offset_args(self.dataset, self.start_day, self.speed, self.looping,
                           self.shift_to_today, self.now)


class Window(InputPartition):
    """Simulation time [start, end) for one task, and how to read it."""

    def __init__(self, start: int, end: int, shift: int, opts: Options):
        super().__init__((start, end))
        self.start, self.end, self.shift, self.opts = start, end, shift, opts

    def read(self) -> Iterator["pyarrow.RecordBatch"]:  # noqa: F821
        args = ["--dataset", self.opts.dataset, "--from", str(self.start), "--to",
                str(self.end), "--shift-seconds", str(self.shift)]
        if self.opts.looping:
            args.append("--loop")
        if self.opts.location_ids:
            args += ["--location-id", self.opts.location_ids]
        return read_batches(args)


class Span(InputPartition):
    """Emission counts [start, end) of a live server's clock, for one task: read from the
    server, or, with datasetPath, from the local dataset's windows of simulation time that
    the span covers (`windows`, planned from the server's runs)."""

    def __init__(self, start: int, end: int, opts: Options, windows=None, looping=False):
        super().__init__((start, end))
        self.start, self.end, self.opts = start, end, opts
        self.windows, self.looping = windows, looping

    def read(self) -> Iterator["pyarrow.RecordBatch"]:  # noqa: F821
        if self.windows is None:
            return _clock.read_span(self.opts.clock, self.start, self.end,
                                    self.opts.location_ids, self.opts.clock_timeout)
        return self._read_local()

    def _read_local(self):
        for a, b in self.windows:
            args = ["--dataset", self.opts.dataset, "--from", str(a), "--to", str(b)]
            if self.looping:
                args.append("--loop")
            if self.opts.location_ids:
                args += ["--location-id", self.opts.location_ids]
            yield from read_batches(args)


def _split(start: int, end: int, shift: int, opts: Options) -> List[Window]:
    """[start, end) in up to numPartitions slices of time, in order (the output keeps it)."""
    if end <= start:
        return []
    n = opts.partitions if end - start >= _SPLIT_SECONDS else 1
    cuts = [start + (end - start) * k // n for k in range(n + 1)]
    return [Window(a, b, shift, opts) for a, b in zip(cuts, cuts[1:]) if b > a]


class CaspersStreamReader(DataSourceStreamReader):
    """Offsets are the engine's JSON: simulation time planned up to, the wall clock it
    stood there, the time shift and the dataset's tag. The first window catches up to the
    start day at the current UTC time of day; each later one advances by the wall time
    since times the speed (docs/batch-replay.md, the batch replay)."""

    def __init__(self, options):
        self.opts = Options.parse(options)
        self.local = options.get("datasetPath") is not None
        self.answer = None

    def _live_offset(self) -> dict:
        self.answer = _clock.emitted(self.opts.clock, self.opts.clock_timeout)
        if self.local:
            here = run_json(["spark-offset", "--dataset", self.opts.dataset, "--bounds"])["dataset"]
            if here != self.answer["dataset"]:
                raise CaspersError(
                    f"datasetPath {self.opts.dataset} is dataset {here}, and the server at "
                    f"{self.opts.clock} serves dataset {self.answer['dataset']}: give the "
                    f"server's dataset, or leave datasetPath out to read from the server")
        return {"clock": self.opts.clock, "dataset": self.answer["dataset"],
                "emitted": int(self.answer["emitted"])}

    def _local_windows(self, start: int, end: int) -> list:
        """The windows of simulation time that emission counts [start, end) cover."""
        runs = (self.answer or _clock.emitted(self.opts.clock, self.opts.clock_timeout))["runs"]
        if start < end and (not runs or start < runs[0][2]):
            raise CaspersError(
                f"emission {start} is older than the runs the server at {self.opts.clock} keeps")
        windows = []
        for a, b, at in runs:
            lo, hi = max(start, at), min(end, at + b - a)
            if lo < hi:
                windows.append((a + lo - at, a + hi - at))
        return windows

    def initialOffset(self) -> dict:
        if self.opts.clock:
            # What the server emits from now on, as a stream subscriber connecting now.
            return self._live_offset()
        return run_json(self.opts.offset_args())

    def latestOffset(self, start: dict = None, limit=None) -> dict:
        if start is None:
            raise CaspersError("this source needs Spark 4.2 or later (latestOffset(start, limit))")
        if self.opts.clock:
            if "emitted" not in start:
                raise CaspersError(
                    "the checkpoint's offsets are the source's own clock's, not a server's: "
                    "use a new checkpointLocation for option clock")
            now = self._live_offset()
            if start["clock"] != now["clock"]:
                raise CaspersError(
                    f"the checkpoint follows the clock at {start['clock']}, not {now['clock']}: "
                    f"use a new checkpointLocation")
            if start["dataset"] != now["dataset"]:
                raise CaspersError(
                    f"the server at {now['clock']} now serves dataset {now['dataset']}, and the "
                    f"checkpoint's offsets are of dataset {start['dataset']}")
            if now["emitted"] < start["emitted"]:
                raise CaspersError(
                    f"the clock at {now['clock']} has emitted less ({now['emitted']}) than the "
                    f"checkpoint says it had ({start['emitted']}): it is another clock")
            return now
        if "simulation_seconds" not in start:
            raise CaspersError(
                "the checkpoint's offsets follow a server's clock: give option clock, or use "
                "a new checkpointLocation")
        return run_json(self.opts.offset_args() + ["--start", _json(start)])

    def partitions(self, start: dict, end: dict) -> list:
        if self.opts.clock:
            a, b = start["emitted"], end["emitted"]
            cuts = list(range(a, b, _clock.MAX_SPAN)) + [b]
            spans = zip(cuts, cuts[1:])
            if self.local:
                looping = bool((self.answer or {}).get("clock", {}).get("loop"))
                return [Span(x, y, self.opts, self._local_windows(x, y), looping)
                        for x, y in spans if y > x]
            return [Span(x, y, self.opts) for x, y in spans if y > x]
        return _split(start["simulation_seconds"], end["simulation_seconds"],
                      end["shift_seconds"], self.opts)

    def read(self, partition: Window):
        return partition.read()

    def commit(self, end: dict) -> None:
        pass


class CaspersBatchReader(DataSourceReader):
    """`spark.read.format("caspers")`: every event of the dataset (one pass, no shift)."""

    def __init__(self, options):
        self.opts = Options.parse(options)

    def partitions(self) -> List[Window]:
        if self.opts.clock:
            raise CaspersError("option clock is for spark.readStream (a live clock has no end)")
        bounds = run_json(["spark-offset", "--dataset", self.opts.dataset, "--bounds"])
        return _split(bounds["start"], bounds["end"], 0, self.opts)

    def read(self, partition: Window):
        return partition.read()


class CaspersDataSource(DataSource):
    """The `caspers` data source: register it with
    `spark.dataSource.register(CaspersDataSource)`."""

    @classmethod
    def name(cls) -> str:
        return "caspers"

    def schema(self) -> StructType:
        return SCHEMA

    def reader(self, schema: StructType) -> CaspersBatchReader:
        return CaspersBatchReader(self.options)

    def streamReader(self, schema: StructType) -> CaspersStreamReader:
        return CaspersStreamReader(self.options)


def _json(value: dict) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
