"""Prometheus metrics of `harness serve`, named and labelled like OVMS's MediaPipe-graph families for its
V3 (OpenAI) REST API (src/model_metric_reporter.cpp, src/metrics/metric_config.cpp), so a suite that
scrapes `/metrics` reads the same names from OVMS and from the reference server.

prometheus_client exposes counters with a `_total` suffix; the harness matches families by prefix."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

Method = Literal["Unary", "Stream"]
_LABELS = ["name", "api", "method", "interface"]
# OVMS's buckets are powers of 1.8 from 10 us; a coarser set keeps the scrape small
_BUCKETS_US = (1e3, 5e3, 1e4, 5e4, 1e5, 5e5, 1e6, 5e6, 1e7, 6e7)


class ServerMetrics:
    """One registry per server; `name` is the served graph (model) name label."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._accepted = Counter("ovms_requests_accepted", "Number of accepted requests.", _LABELS, registry=r)
        self._rejected = Counter("ovms_requests_rejected", "Number of rejected requests.", _LABELS, registry=r)
        self._responses = Counter("ovms_responses", "Number of responses (stream chunks count one each).",
                                  _LABELS, registry=r)
        self._errors = Counter("ovms_graph_error", "Number of errors while generating.", _LABELS, registry=r)
        self._current = Gauge("ovms_current_graphs", "Requests in process.", ["name"], registry=r)
        self._latency = Histogram("ovms_graph_request_latency_us", "Request arrival to last response, us.",
                                  ["name", "method"], buckets=_BUCKETS_US, registry=r)
        # not an OVMS family: what the engine generated, for tokens/s from the server's side
        self._generated = Counter("harness_generated_tokens", "Tokens generated.", ["name"], registry=r)

    @staticmethod
    def _l(name: str, method: Method) -> dict[str, str]:
        return {"name": name, "api": "V3", "method": method, "interface": "REST"}

    def rejected(self, name: str, method: Method = "Unary") -> None:
        self._rejected.labels(**self._l(name, method)).inc()

    def response(self, name: str, method: Method) -> None:
        self._responses.labels(**self._l(name, method)).inc()

    def error(self, name: str, method: Method) -> None:
        self._errors.labels(**self._l(name, method)).inc()

    def generated(self, name: str, tokens: int) -> None:
        self._generated.labels(name=name).inc(tokens)

    @contextmanager
    def request(self, name: str, method: Method) -> Iterator[None]:
        """An accepted request from arrival to its last response."""
        self._accepted.labels(**self._l(name, method)).inc()
        self._current.labels(name=name).inc()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._current.labels(name=name).dec()
            self._latency.labels(name=name, method=method).observe((time.perf_counter() - started) * 1e6)

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()
