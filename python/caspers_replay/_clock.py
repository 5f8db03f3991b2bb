"""A live server's clock as the source's time (`option("clock", URL)`): the server says how
much it has emitted (an emission count, seconds of simulation time since its clock began,
which only grows), and hands out a span of it as an Arrow IPC stream, the events its stream
subscribers got over that span, in the same order."""

import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Iterator, Optional

from ._engine import CaspersError

#: How long a request may take.
_REQUEST_SECONDS = 10
#: The largest span the server hands out at once (GET /v1/history).
MAX_SPAN = 86_400


def prefix_of(url: str) -> str:
    """Where a clock's endpoints are: a server's base URL (`/v1/…`), or a session's
    (`…/v1/sessions/ID/…`)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise CaspersError(
            f"option clock: expected the server's URL (http://HOST:PORT) or a session's "
            f"(http://HOST:PORT/v1/sessions/ID), not {url!r}")
    url = url.rstrip("/")
    return url if "/v1/sessions/" in parsed.path else f"{url}/v1"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=_REQUEST_SECONDS) as response:
        return response.read()


def _refusal(e: urllib.error.HTTPError) -> str:
    try:
        return json.loads(e.read()).get("error") or f"HTTP {e.code}"
    except (ValueError, AttributeError):
        return f"HTTP {e.code}"


def _retrying(what: str, url: str, timeout: float, call):
    """`call()`, tried again with backoff while the server cannot be reached, for
    `timeout` seconds at most; a refusal (4xx) is not tried again."""
    wait, deadline, last = 0.2, time.monotonic() + timeout, None
    while True:
        try:
            return call()
        except urllib.error.HTTPError as e:
            if e.code == 404 and "/v1/sessions/" not in url:
                raise CaspersError(
                    f"option clock: {url} is not a caspers-replay server ({e.geturl()} "
                    f"answered 404)") from None
            if e.code < 500:
                raise CaspersError(f"{what} at {url}: {_refusal(e)}") from None
            last = f"HTTP {e.code}: {_refusal(e)}"
        except (urllib.error.URLError, OSError) as e:
            last = str(getattr(e, "reason", e))
        if time.monotonic() + wait > deadline:
            raise CaspersError(
                f"{what}: the server at {url} did not answer for {timeout:.0f} s "
                f"(last error: {last})")
        time.sleep(wait)
        wait = min(wait * 2, 5.0)


def emitted(url: str, timeout: float) -> dict:
    """`GET …/emitted`: {dataset, emitted, runs, clock}."""
    prefix = prefix_of(url)

    def call():
        body = _get(f"{prefix}/emitted")
        try:
            answer = json.loads(body)
            int(answer["emitted"]), str(answer["dataset"])
        except (ValueError, KeyError, TypeError):
            raise CaspersError(
                f"option clock: {url} is not a caspers-replay server "
                f"(GET {prefix}/emitted did not say what it emitted)") from None
        return answer

    return _retrying("reading the clock", url, timeout, call)


def read_span(url: str, start: int, end: int, locations: Optional[str],
              timeout: float) -> Iterator["pyarrow.RecordBatch"]:  # noqa: F821
    """The events of emission counts [start, end), a day at a time."""
    import pyarrow.ipc

    prefix = prefix_of(url)
    at = start
    while at < end:
        to = min(end, at + MAX_SPAN)
        query = {"from": at, "to": to}
        if locations:
            query["location_id"] = locations
        target = f"{prefix}/history?{urllib.parse.urlencode(query)}"
        body = _retrying("reading the events", url, timeout, lambda: _get(target))
        yield from pyarrow.ipc.open_stream(io.BytesIO(body))
        at = to
