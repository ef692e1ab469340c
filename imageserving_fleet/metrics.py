"""Status documents as Prometheus metrics: SPEC §7's names, types and labels, in two encodings.

Pure: status documents (and, for the fleet exporter, each host's result) in, exposition text out.
The agent (`imageserving metrics`, the supervisor's `/metrics`), the fleet exporter and
`report --format openmetrics|prometheus` all go through `render`, so the names cannot drift apart.

prometheus_client is imported here and nowhere else: import this module only where metrics are
asked for (the status path never does; a test checks).

Two encodings of the same families:
- `prometheus`: the text format 0.0.4, what node_exporter's textfile collector and
  `promtool check metrics` read (they reject OpenMetrics' `stateset` type); statesets are gauges.
- `openmetrics`: OpenMetrics 1.0 (`# EOF`, typed statesets), what Prometheus asks for when it scrapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, StateSetMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.exposition import generate_latest as _text
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as _openmetrics

from .componentstate import STATES, State
from .schema import AgentStatus
from .timefmt import parse_stamp
from .verdict import Result

PROMETHEUS, OPENMETRICS = "prometheus", "openmetrics"
FORMATS = (PROMETHEUS, OPENMETRICS)
CONTENT_TYPES = {PROMETHEUS: CONTENT_TYPE_LATEST, OPENMETRICS: OPENMETRICS_CONTENT_TYPE}
HOST_RESULTS = tuple(r.value for r in Result)


@dataclass(frozen=True)
class HostSample:
    """One host as the fleet exporter serves it: its verdict and, when it answered, its status."""

    host: str
    result: str                      # one of HOST_RESULTS
    status: AgentStatus | None = None

    @property
    def up(self) -> bool:
        """The host was reached (its agent answered, even if to say the supervisor is down)."""
        return self.result not in (Result.UNREACHABLE, Result.SKIPPED)


class _Families:
    """Every family of SPEC §7, filled host by host so that each family's samples stay together."""

    def __init__(self, host_label: bool) -> None:
        p = ["host"] if host_label else []
        comp = p + ["component"]
        self.host_label = host_label
        self.agent_info = GaugeMetricFamily("imageserving_agent_info", "The agent's version (always 1).",
                                            labels=p + ["version"])
        self.supervisor_up = GaugeMetricFamily("imageserving_supervisor_up", "1 when the Server Supervisor runs.",
                                               labels=p)
        self.supervisor_start = GaugeMetricFamily("imageserving_supervisor_start_time_seconds",
                                                  "When the Server Supervisor started (Unix time).", labels=p)
        self.supervisor_rss = GaugeMetricFamily("imageserving_supervisor_memory_rss_bytes",
                                                "Resident memory of the Server Supervisor.", labels=p)
        self.up = GaugeMetricFamily("imageserving_component_up", "1 when the component is RUNNING.", labels=comp)
        self.state = StateSetMetricFamily("imageserving_component_state", "The component's supervisor state.",
                                          labels=comp)
        self.start = GaugeMetricFamily("imageserving_component_start_time_seconds",
                                       "When the component's current process started (Unix time).", labels=comp)
        self.rss = GaugeMetricFamily("imageserving_component_memory_rss_bytes",
                                     "Resident memory of the component's whole process tree.", labels=comp)
        self.pss = GaugeMetricFamily("imageserving_component_memory_pss_bytes",
                                     "Proportional set size of the component's whole process tree (shared pages "
                                     "divided among the processes that map them).", labels=comp)
        self.restarts = CounterMetricFamily("imageserving_component_restarts",
                                            "Restarts of the component since the supervisor started.", labels=comp)
        self.healthy = GaugeMetricFamily("imageserving_component_healthy",
                                         "1 when the component's health check passes (no check: when RUNNING).",
                                         labels=comp)
        self.host_up = GaugeMetricFamily("imageserving_host_up", "1 when the host answered the last poll.",
                                         labels=["host"])
        self.host_result = StateSetMetricFamily("imageserving_host_result", "The host's result in the last poll.",
                                                labels=["host"])

    def add_status(self, prefix: list[str], status: AgentStatus, wall: float) -> None:
        now = _time_of(status, wall)
        sup = status.supervisor
        self.agent_info.add_metric(prefix + [status.agent_version or "unknown"], 1)
        self.supervisor_up.add_metric(prefix, 1 if sup.state == State.RUNNING else 0)
        if sup.state == State.RUNNING and sup.uptime_s is not None:
            self.supervisor_start.add_metric(prefix, round(now - sup.uptime_s))
        if sup.rss_bytes is not None:
            self.supervisor_rss.add_metric(prefix, sup.rss_bytes)
        for c in status.components:
            labels = prefix + [c.id]
            running = c.state == State.RUNNING
            self.up.add_metric(labels, 1 if running else 0)
            self.state.add_metric(labels, {s: s == c.state for s in STATES})
            if c.uptime_s is not None and c.pid is not None:
                self.start.add_metric(labels, round(now - c.uptime_s))
            if c.rss_bytes is not None:
                self.rss.add_metric(labels, c.rss_bytes)
            if c.pss_bytes is not None:
                self.pss.add_metric(labels, c.pss_bytes)
            self.restarts.add_metric(labels, c.restarts)
            self.healthy.add_metric(labels, healthy(running, getattr(c, "health", None)))

    def add_host(self, sample: HostSample) -> None:
        self.host_up.add_metric([sample.host], 1 if sample.up else 0)
        self.host_result.add_metric([sample.host], {r: r == sample.result for r in HOST_RESULTS})

    def families(self) -> list[Metric]:
        agent = [self.agent_info, self.supervisor_up, self.supervisor_start, self.supervisor_rss, self.up,
                 self.state, self.start, self.rss, self.pss, self.restarts, self.healthy]
        return agent + ([self.host_up, self.host_result] if self.host_label else [])


def healthy(running: bool, health: str | None) -> int:
    """1 for a passing check; with no check configured, 1 when RUNNING (nothing says otherwise)."""
    if health is None:
        return 1 if running else 0
    return 1 if running and health == "healthy" else 0


def _time_of(status: AgentStatus, wall: float) -> float:
    """The document's own time (the host's clock, which its uptimes count on), else `wall`."""
    try:
        return parse_stamp(status.time)
    except (TypeError, ValueError):
        return wall


def agent_families(status: AgentStatus, wall: float) -> list[Metric]:
    """Takes one host's status; returns its families without a host label (the agent's view)."""
    f = _Families(host_label=False)
    f.add_status([], status, wall)
    return f.families()


def fleet_families(samples: Iterable[HostSample], wall: float) -> list[Metric]:
    """Takes every host's latest sample; returns the families with a `host` label (the exporter's view).

    A host without a status (unreachable, or an agent that said nothing usable) has only its
    host_up and host_result: none of its component series, so nothing stale can stay RUNNING.
    """
    f = _Families(host_label=True)
    for s in samples:
        f.add_host(s)
        if s.status is not None:
            f.add_status([s.host], s.status, wall)
    return f.families()


class _Static:
    """A collector that yields families built beforehand (prometheus_client renders collectors)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


def render(families: Sequence[Metric], fmt: str = PROMETHEUS) -> bytes:
    """Takes families; returns their exposition text in `fmt` (prometheus or openmetrics)."""
    if fmt == OPENMETRICS:
        return _openmetrics(_Static(families))  # type: ignore[arg-type]
    if fmt == PROMETHEUS:
        return _text(_Static(families))  # type: ignore[arg-type]
    raise ValueError(f"unknown metrics format {fmt!r}; expected one of {', '.join(FORMATS)}")


def negotiate(accept: str | None) -> str:
    """Takes an HTTP Accept header; returns the format to answer in (OpenMetrics when asked for)."""
    for part in (accept or "").split(","):
        media, _, params = part.strip().partition(";")
        if media.strip() == "application/openmetrics-text":
            q = next((p.split("=", 1)[1] for p in params.split(";") if p.strip().startswith("q=")), "1")
            try:
                if float(q) > 0 and not math.isnan(float(q)):
                    return OPENMETRICS
            except ValueError:
                continue
    return PROMETHEUS
