"""Settings for the whole suite, whichever directory pytest is started from."""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import settings

# A suite started in the background by a non-interactive shell (`nohup bash .ci/run &`, a CI runner's
# job) inherits SIGINT ignored, and so would every process it starts: the Ctrl-C tests would send
# SIGINT to controllers that ignore it, and fail by chance. A handler (unlike SIG_IGN) is not
# inherited across exec, so the children start with the default disposition again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Hypothesis: the same examples on every run, so a red CI is a bug and never fuzzing luck (and no
# deadline: a loaded machine is slow). HYPOTHESIS_PROFILE=explore draws fresh examples each run.
# Loaded here, before any test module builds its own settings(...) on top of the default.
settings.register_profile("ci", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The files that take longest (real servers, fleets of agents, a fresh venv), slowest first: with
# `--dist loadfile` xdist hands files out in collection order, so these start at once instead of
# one of them starting last and being the long pole. Measured with IMAGESERVING_TEST_TIMING (see
# tests/timing_plugin.py); a file missing here only runs in its usual place.
SLOW_FIRST = (
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.location[0], len(rank)))  # stable: the rest keep their order


def pytest_configure(config: pytest.Config) -> None:
    # IMAGESERVING_TEST_TIMING=PATH: per-test wall and CPU, per-file table in PATH (tests/timing_plugin.py).
    from timing_plugin import register

    register(config)
