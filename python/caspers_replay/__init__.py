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

    @staticmethod
    def parse(options) -> "Options":
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

    def initialOffset(self) -> dict:
        return run_json(self.opts.offset_args())

    def latestOffset(self, start: dict = None, limit=None) -> dict:
        if start is None:
            raise CaspersError("this source needs Spark 4.2 or later (latestOffset(start, limit))")
        return run_json(self.opts.offset_args() + ["--start", _json(start)])

    def partitions(self, start: dict, end: dict) -> List[Window]:
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
