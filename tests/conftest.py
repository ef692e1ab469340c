"""Settings for the whole suite, whichever directory pytest is started from."""

from __future__ import annotations

import signal

import pytest

# A suite started in the background by a non-interactive shell (`nohup bash .ci/run &`, a CI runner's
# job) inherits SIGINT ignored, and so would every process it starts: the Ctrl-C tests would send
# SIGINT to controllers that ignore it, and fail by chance. A handler (unlike SIG_IGN) is not
# inherited across exec, so the children start with the default disposition again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_configure(config: pytest.Config) -> None:
    # IMAGESERVING_TEST_TIMING=PATH: per-test wall and CPU, per-file table in PATH (tests/timing_plugin.py).
    from timing_plugin import register

    register(config)
