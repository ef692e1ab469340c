"""Frame the agent's output on a host so nothing its login shell prints is taken for it.

Whatever the login shell is and whatever its startup files print (a banner, an `echo` in
.bashrc, a conda or rvm message, before or after the command), the controller finds the agent's
output between two markers that carry a random nonce chosen for this one command:

    exec /bin/sh -c 'echo N-begin; echo N-begin >&2; (AGENT COMMAND); c=$?; echo N-end; echo N-end >&2; exit $c'

The login shell only has to run `exec` with one single-quoted word, which sh, dash, bash, zsh,
ksh, busybox ash, csh/tcsh and fish all parse alike (for csh and fish as long as no value holds a
backslash, a `!` or a newline); the agent command itself is always run by /bin/sh, so its quoting
(remote.py, POSIX sh) never depends on the login shell. Anything outside the markers goes to the
debug log (`imageserving-fleet -v`), never into a result. Pure, except for the nonce.
"""

from __future__ import annotations

import logging
import secrets
import shlex

from .ssh import CommandResult, Session

log = logging.getLogger(__name__)

NONCE_BYTES = 12


def new_nonce() -> str:
    """A fresh marker prefix: a random hex string no startup file can print by chance."""
    return "isf" + secrets.token_hex(NONCE_BYTES)


def wrap(command: str, nonce: str) -> str:
    """Takes a POSIX sh command line; returns one that any login shell hands to /bin/sh, framed."""
    script = (f"echo {nonce}-begin; echo {nonce}-begin >&2; ({command}); c=$?; "
              f"echo {nonce}-end; echo {nonce}-end >&2; exit $c")
    return f"exec /bin/sh -c {shlex.quote(script)}"


def unframe(data: bytes, nonce: str) -> tuple[bytes, bytes]:
    """Takes one stream as it arrived; returns (what the command wrote, what others wrote around it).

    No begin marker: the wrapper never ran (no /bin/sh, a shell that could not parse it), so the
    stream is returned whole and judged as before. No end marker: the command was cut short, and
    everything after the begin marker is its output.
    """
    begin, end = f"{nonce}-begin\n".encode(), f"{nonce}-end\n".encode()
    start = data.find(begin)
    if start < 0:
        return data, b""
    inner = start + len(begin)
    stop = data.find(end, inner)
    if stop < 0:
        return data[inner:], data[:start]
    return data[inner:stop], data[:start] + data[stop + len(end):]


def unframe_result(result: CommandResult, nonce: str, host: str) -> CommandResult:
    """The command's own exit code, stdout and stderr; what the shell added goes to the debug log."""
    out, out_noise = unframe(result.stdout, nonce)
    err, err_noise = unframe(result.stderr, nonce)
    if out_noise or err_noise:
        log.debug("%s: printed outside the agent's output: stdout %r, stderr %r",
                  host, out_noise[:2000], err_noise[:2000])
    return CommandResult(result.exit_code, out, err)


def run(session: Session, command: str, *, stdin: bytes | None, timeout: float, max_output: int) -> CommandResult:
    """Runs a POSIX sh command line on the session's host, framed; returns what the command itself did."""
    nonce = new_nonce()
    out = session.run(wrap(command, nonce), stdin=stdin, timeout=timeout, max_output=max_output)
    return unframe_result(out, nonce, session.host)
