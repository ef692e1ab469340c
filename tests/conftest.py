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

# Every changing fleet command appends to the audit log (default ~/.imageserving-fleet/audit.jsonl):
# the suite's runs go to a file of its own, not to the home of whoever runs the tests.
if "IMAGESERVING_AUDIT_LOG" not in os.environ:
    os.environ["IMAGESERVING_AUDIT_LOG"] = os.path.join(tempfile.mkdtemp(prefix="imageserving-audit-"), "audit.jsonl")
