"""A component's log relay: reads its stdout and stderr from a pipe, writes `<home>/logs/<id>.log`.

Run as `python -m imageserving_fleet.agent.relay LOG MAX_BYTES BACKUPS` with the pipe's read end
as stdin; one per component process, in a session of its own, started by the supervisor just
before the component. As s6-log does, it outlives the supervisor: a supervisor killed (kill -9,
the OOM killer) or replaced (`restart supervisor`) costs the component no line and no EPIPE,
because the reader of its pipe is not the supervisor. It ends at end of file, when the last
process holding the pipe's write end (the component's whole tree) is gone. Write errors (full
disk, read-only directory) drop data with a note, never block or break the component; size
rotation as every log under <home>/logs; SIGHUP reopens the file (an external logrotate moved it).
"""

from __future__ import annotations

import os
import signal
import sys

from .logfiles import LogFile

CHUNK = 65536


def relay(fd: int, log: LogFile) -> None:
    reopen = False

    def on_hup(*_: object) -> None:
        nonlocal reopen
        reopen = True

    signal.signal(signal.SIGHUP, on_hup)
    while True:
        try:
            data = os.read(fd, CHUNK)
        except OSError:
            data = b""
        if not data:
            break
        if reopen:
            reopen = False
            log.reopen()
        log.write(data)
    log.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        sys.stderr.write("usage: python -m imageserving_fleet.agent.relay LOG MAX_BYTES BACKUPS\n")
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for `supervise` must not cut the log
    relay(0, LogFile(args[0], int(args[1]), int(args[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
