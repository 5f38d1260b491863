"""The server's Prometheus /metrics read at an interval during a serving load, in a background thread.

One blocking httpx client in its own thread, so the scrapes never wait on (or delay) the load's event loop; a
scrape that fails or times out is skipped, not retried. Histogram buckets and `_created` samples are dropped
when parsing: they are most of a histogram's lines and no chart uses them. The thread's own CPU time is
measured (thread_time) so a report can show what the sampling cost."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from harness.core.schema import LoadTimeline, MetricsScrape

if TYPE_CHECKING:
    import httpx


def metrics_url(base_url: str) -> str:
    """/metrics at the server's root: 'http://h:8000/v3' -> 'http://h:8000/metrics'."""
    return base_url.rsplit("/v", 1)[0] + "/metrics"


def parse(text: str) -> tuple[dict[str, float], dict[str, str]]:
    """Prometheus text exposition as ({sample name with labels: value}, {family: type}), buckets and _created
    samples left out."""
    values: dict[str, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                types[parts[2]] = parts[3]
            continue
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{", 1)[0]
        if base.endswith(("_bucket", "_created")):
            continue
        try:
            values[name] = float(value)
        except ValueError:
            continue
    return values, types


def read_once(url: str, timeout_s: float = 5.0) -> dict[str, float]:
    """One read of /metrics as {sample name with labels: value} ({} when the server has none or fails)."""
    import httpx

    try:
        r = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError:
        return {}
    return parse(r.text)[0] if r.status_code == 200 else {}


class Scraper:
    """Reads `url` every `interval_s` seconds from start() to stop(); stop() returns the LoadTimeline."""

    def __init__(self, url: str, interval_s: float, timeout_s: float = 2.0) -> None:
        self.url, self.interval_s, self.timeout_s = url, interval_s, timeout_s
        self._scrapes: list[MetricsScrape] = []
        self._types: dict[str, str] = {}
        self._cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-scraper", daemon=True)

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def stop(self) -> LoadTimeline:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 5)
        return LoadTimeline(interval_s=self.interval_s, scrapes=list(self._scrapes), types=dict(self._types),
                            scraper_cpu_s=self._cpu_s)

    def _run(self) -> None:
        import httpx

        cpu0 = time.thread_time()
        with httpx.Client(timeout=self.timeout_s) as client:
            next_at = time.perf_counter()
            while True:  # one scrape right away, one per interval, and a last one once stop() is called
                self._scrape(client)
                self._cpu_s = time.thread_time() - cpu0
                if self._stop.is_set():
                    break
                # fixed schedule: a slow scrape does not shift the ones after it
                next_at += self.interval_s
                self._stop.wait(max(0.0, next_at - time.perf_counter()))
        self._cpu_s = time.thread_time() - cpu0

    def _scrape(self, client: httpx.Client) -> None:
        import httpx

        try:
            r = client.get(self.url)
        except httpx.HTTPError:
            return  # a missed scrape is a gap in the series, not a failed load
        if r.status_code == 200:
            values, types = parse(r.text)
            self._scrapes.append(MetricsScrape(t_ns=time.perf_counter_ns(), values=values))
            self._types.update(types)
