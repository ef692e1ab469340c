"""`imageserving config install`: the host's half of the fleet's `config push`.

The new file arrives on stdin. It is written next to the destination, validated there by this
host's own agent exactly as `config check` does (its own ${VAR} environment, its own Python), and
only then installed: the previous file is kept as `<dest>.prev` and the new one renamed over the
destination, so the destination is always one whole file, old or new. Not atomic.write_atomic:
the staged file keeps a name of its own (`<dest>.pushed-PID`) that a refusal names. A refused file is removed
and the old one stays. Then the running supervisor reloads it.
"""

from __future__ import annotations

import os
import shutil
from typing import BinaryIO

from ..atomic import sync_dir
from ..errors import ConfigError
from ..home import Home
from .config import MAX_CONFIG_BYTES, SYSTEM_CONFIG, load_config
from .control import SUPERVISOR_DOWN, Outcome, down_status, reload


def destination(explicit: str | None) -> str:
    """--config or IMAGESERVING_CONFIG, else /etc/imageserving/agent.yaml (never the packaged demo)."""
    return os.path.abspath(explicit or os.environ.get("IMAGESERVING_CONFIG") or SYSTEM_CONFIG)


def install(home: Home, dest: str, source: BinaryIO, apply: bool = True) -> Outcome:
    """Validates and installs what `source` holds as `dest`, then reloads; raises ConfigError if refused."""
    data = source.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"larger than {MAX_CONFIG_BYTES // 2**20} MiB: not an agent configuration", path=dest)
    directory = os.path.dirname(dest)
    try:
        os.makedirs(directory, exist_ok=True)
        mode = os.stat(dest).st_mode & 0o777 if os.path.exists(dest) else 0o644
        staged = f"{dest}.pushed-{os.getpid()}"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise ConfigError(f"cannot write the pushed configuration: {exc.strerror or exc}", path=dest) from None
    try:
        load_config(staged)  # what `config check` does, on the pushed file
        previous = None
        if os.path.exists(dest):
            previous = f"{dest}.prev"
            shutil.copy2(dest, f"{previous}.tmp")
            os.replace(f"{previous}.tmp", previous)
        os.replace(staged, dest)
        sync_dir(directory)
    except OSError as exc:
        raise ConfigError(f"cannot install the pushed configuration: {exc.strerror or exc}", path=dest) from None
    finally:
        if os.path.exists(staged):
            os.unlink(staged)  # refused (or failed): the old file stays
    kept = f" (previous kept as {previous})" if previous else ""
    if not apply:
        return Outcome(0, f"installed {dest}{kept}", None)
    out = reload(home, load_config(dest))
    if out.code == SUPERVISOR_DOWN:
        return Outcome(SUPERVISOR_DOWN, f"installed {dest}{kept}; Server Supervisor is not running: it applies "
                                        "at the next start", down_status())
    out.message = f"installed {dest}{kept}; {out.message}"
    if out.status is not None:
        out.status = {**out.status, "install": {"path": dest, "previous": previous}}
    return out

