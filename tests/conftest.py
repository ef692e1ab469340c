"""Settings for the whole suite, whichever directory pytest is started from."""

from __future__ import annotations

import os
import signal
import tempfile

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
