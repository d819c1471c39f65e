"""Prometheus metrics of one gateway instance (its own registry: no process-global state).

Example:
    >>> m = GatewayMetrics()
    >>> m.requests.labels(endpoint="predict", status="200").inc()
    >>> b"finmlsec_requests_total" in m.render()
    True
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class GatewayMetrics:
    """Requests by endpoint and status, latency, rows predicted, guard decisions."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "finmlsec_requests", "Requests by endpoint and HTTP status",
            ["endpoint", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "finmlsec_request_seconds", "Time to answer, by endpoint", ["endpoint"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=self.registry,
        )
        self.rows = Counter("finmlsec_predicted_rows", "Records predicted", registry=self.registry)
        self.guards = Counter(
            "finmlsec_guard_decisions", "Refusals and flags by guard", ["guard", "decision"],
            registry=self.registry,
        )

        self._children: dict[tuple[str, ...], Any] = {}

    def requests_child(self, endpoint: str, status: str) -> Any:
        """``requests.labels(endpoint=..., status=...)``, cached (the hot path counts every
        request; a labelled child is created on first use, as with ``labels``)."""
        key = ("requests", endpoint, status)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = self.requests.labels(endpoint=endpoint, status=status)
        return c

    def latency_child(self, endpoint: str) -> Any:
        """``latency.labels(endpoint=...)``, cached."""
        key = ("latency", endpoint)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = self.latency.labels(endpoint=endpoint)
        return c

    def render(self) -> bytes:
        return generate_latest(self.registry)
