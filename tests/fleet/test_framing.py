"""Agent output framing: the markers, and the wrapped command line under real local shells."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from imageserving_fleet.fleet.framing import new_nonce, unframe, wrap

N = "isf0123"


@pytest.mark.parametrize(("data", "inner", "outside"), [
    (b"isf0123-begin\n{}\nisf0123-end\n", b"{}\n", b""),
    (b"banner\nisf0123-begin\n{}\nisf0123-end\nbye\n", b"{}\n", b"banner\nbye\n"),
    (b"no newline isf0123-begin\n{}\nisf0123-end\n", b"{}\n", b"no newline "),  # a startup file's printf
    (b"isf0123-begin\n{\"a\": 1}", b"{\"a\": 1}", b""),          # cut short: no end marker
    (b"{}\n", b"{}\n", b""),                                     # the wrapper never ran: judged whole
    (b"isf9999-begin\nfake\nisf9999-end\n", b"isf9999-begin\nfake\nisf9999-end\n", b""),  # another nonce
    (b"isf0123-begin\nisf0123-end\n", b"", b""),
])
def test_unframe(data: bytes, inner: bytes, outside: bytes) -> None:
    assert unframe(data, N) == (inner, outside)


def test_nonces_differ() -> None:
    assert len({new_nonce() for _ in range(100)}) == 100


SHELLS = [s for s in ("sh", "dash", "bash", "zsh", "ksh", "mksh", "busybox") if shutil.which(s)]
COMMAND = """printf '%s\\n' "it's" 'a "quoted" $HOME' >&1; echo err >&2; exit 3"""


@pytest.mark.parametrize("shell", SHELLS)
def test_the_wrapped_line_runs_under_each_login_shell(shell: str) -> None:
    argv = [shell, "sh"] if shell == "busybox" else [shell]
    line = wrap(COMMAND, N)
    noisy = f"echo before; echo before-err >&2; {line}"  # what a chatty startup file adds
    done = subprocess.run([*argv, "-c", noisy], capture_output=True, timeout=30)
    assert done.returncode == 3
    assert unframe(done.stdout, N) == (b"it's\na \"quoted\" $HOME\n", b"before\n")
    assert unframe(done.stderr, N) == (b"err\n", b"before-err\n")
