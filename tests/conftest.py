"""Settings for the whole suite, whichever directory pytest is started from."""

from __future__ import annotations

import os
import signal
import tempfile
from typing import Any

import pytest
from hypothesis import settings

# A suite started in the background by a non-interactive shell (`nohup bash .ci/run &`, a CI runner's
# job) inherits SIGINT ignored, and so would every process it starts: the Ctrl-C tests would send
# SIGINT to controllers that ignore it, and fail by chance. A handler (unlike SIG_IGN) is not
# inherited across exec, so the children start with the default disposition again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The connection holder (SPEC §9) is off for the whole suite: a test that ran a fleet command would
# otherwise leave a background holder behind. The tests of the holder turn it on for their own
# commands (tests/fleet/test_persist.py), in directories of their own, and stop what they start.
os.environ["IMAGESERVING_PERSIST"] = "0"

# Every changing fleet command appends to the audit log (default ~/.imageserving-fleet/audit.jsonl):
# the suite's runs go to a file of its own, not to the home of whoever runs the tests.
if "IMAGESERVING_AUDIT_LOG" not in os.environ:
    os.environ["IMAGESERVING_AUDIT_LOG"] = os.path.join(tempfile.mkdtemp(prefix="imageserving-audit-"), "audit.jsonl")

# Hypothesis: the same examples on every run, so a red CI is a bug and never fuzzing luck (and no
# deadline: a loaded machine is slow). HYPOTHESIS_PROFILE=explore draws fresh examples each run.
# Loaded here, before any test module builds its own settings(...) on top of the default.
settings.register_profile("ci", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Scheduling for `-n N --dist loadfile --no-loadscope-reorder` (the README's command). xdist's own
# order is "most tests first", which starts the slow few-test files (a fresh venv, fleets of real
# agents) LAST, where one of them is the long pole. These files go first, slowest first (measured
# with IMAGESERVING_TEST_TIMING, see tests/timing_plugin.py); the rest keep collection order.
SLOW_FIRST = (
    "tests/fleet/test_deploy.py",        # a module fixture: one unit, the longest
    "tests/fleet/test_packaging.py",     # a fresh venv and `pip install .`
    "tests/agent/test_supervisor.py",
    "tests/fleet/test_fleet_cli.py",
    "tests/fleet/test_reports.py",
    "tests/fleet/test_fleet_config.py",
    "tests/fleet/test_login_shells.py",
    "tests/fleet/test_cluster.py",
    "tests/agent/test_faults.py",
    "tests/fleet/test_fleet_faults.py",
    "tests/agent/test_reload.py",
    "tests/fleet/test_become.py",
    "tests/fleet/test_operator_day.py",
    "tests/fleet/test_live.py",
    "tests/agent/test_real_servers.py",
    "tests/fleet/test_cluster_tls.py",
)
# Files whose tests share no module fixture, long enough to be split over N workers (each part a
# unit of its own: loadfile would otherwise run all of them on one worker, one after the other).
SPLIT = {
    "tests/agent/test_supervisor.py": 3,
    "tests/fleet/test_fleet_cli.py": 2,
    "tests/agent/test_faults.py": 2,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.location[0], len(rank)))  # stable: the rest keep their order


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SplittingLoadFile(LoadFileScheduling):  # type: ignore[misc]
        """loadfile, except that a file in SPLIT is dealt round-robin into that many units."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.parts: dict[str, str] = {}
            self.dealt: dict[str, int] = {}

        def _split_scope(self, nodeid: str) -> str:
            scope = str(super()._split_scope(nodeid))
            if scope not in SPLIT:
                return scope
            if nodeid not in self.parts:   # first seen in collection order: deal round-robin
                n = self.dealt.get(scope, 0)
                self.dealt[scope] = n + 1
                self.parts[nodeid] = f"{scope}#{n % SPLIT[scope]}"
            return self.parts[nodeid]

    return SplittingLoadFile(config, log)


def pytest_configure(config: pytest.Config) -> None:
    # IMAGESERVING_TEST_TIMING=PATH: per-test wall and CPU, per-file table in PATH (tests/timing_plugin.py).
    from timing_plugin import register

    register(config)
