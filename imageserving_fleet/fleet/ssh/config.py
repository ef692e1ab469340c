"""ssh_config as OpenSSH reads it: the user's file then the system's, `Include` inlined, read once.

paramiko's SSHConfig does the matching (Host, Match, tokens); it ignores Include, which this
module expands first. Lookups are cached per (file, host name): aliases of one host cost one.
"""

from __future__ import annotations

import glob
import os
import shlex
import threading
from typing import Any

from imageserving_fleet.errors import SshConfigError, UsageError

from .base import load_paramiko

SYSTEM_SSH_CONFIG = "/etc/ssh/ssh_config"


def read_ssh_config(path: str, base: str, depth: int = 0) -> str:
    """Returns an ssh_config's text with its `Include` lines replaced by the files they name.

    paramiko's SSHConfig ignores Include, and a ~/.ssh/config built of config.d/* files is common;
    inlining is what OpenSSH does for includes at the top level, and close enough inside blocks.
    Relative Include paths are under `base` (~/.ssh for a user's file, /etc/ssh for the system's).
    """
    if depth > 16:
        raise SshConfigError(f"{path}: Include nested too deeply")
    out = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            words = line.strip().split(None, 1)
            if len(words) == 2 and words[0].lower() == "include":
                for pattern in shlex.split(words[1]):
                    pattern = os.path.expanduser(pattern)
                    if not os.path.isabs(pattern):
                        pattern = os.path.join(base, pattern)
                    for included in sorted(glob.glob(pattern)):
                        if os.path.isfile(included):
                            out.append(read_ssh_config(included, base, depth + 1))
                continue
            out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out)



class SshConfigFiles:
    """The ssh_config of a run (`--ssh-config`, or ~/.ssh/config + /etc/ssh/ssh_config) and any
    file a host names with `-F`, each read and parsed once; lookup() is thread-safe.

    The default file is read at construction, so a missing --ssh-config is a usage error before
    any host is contacted; it is parsed on the first lookup (that needs paramiko).
    """

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._path = path  # the run's file (--ssh-config; None: the user's and the system's)
        self._texts: dict[str | None, str] = {None: config_text(path)}
        self._configs: dict[str | None, Any] = {}
        self._lookups: dict[tuple[str | None, str], dict[str, Any]] = {}
        # Connector.settings()'s results under these files (a dict's get and set are atomic)
        self.settings: dict[Any, Any] = {}

    def lookup(self, config_path: str | None, hostname: str) -> dict[str, Any]:
        """The options ssh_config gives `hostname`, keys lower-cased; `config_path` None: the run's."""
        key = (config_path, hostname)
        with self._lock:
            found = self._lookups.get(key)
            if found is not None:
                return found
            config = self._configs.get(config_path)
            if config is None:
                config = self._configs[config_path] = self._parse(config_path)
            found = self._lookups[key] = dict(config.lookup(hostname))
            return found

    def unchanged(self) -> bool:
        """Whether every file read so far still reads the same (Includes too): a long-lived user (the
        connection holder) then keeps the parsed files and the lookups instead of parsing again."""
        with self._lock:
            texts = dict(self._texts)
        try:
            # the key None stands for the run's own file, not for OpenSSH's default ones
            return all(config_text(self._path if path is None else path) == text for path, text in texts.items())
        except UsageError:
            return False

    def _parse(self, path: str | None) -> Any:
        paramiko = load_paramiko()
        text = self._texts.get(path)
        if text is None:
            text = self._texts[path] = config_text(path)
        try:
            config = paramiko.SSHConfig.from_text(text)
        except paramiko.SSHException as exc:
            raise SshConfigError(f"ssh_config {path or '~/.ssh/config'}: {exc}") from None
        # ProxyCommand's %p/%r must be the port and user we actually use (an inventory
        # ansible_port beats the file's Port), so we expand those tokens ourselves.
        config.TOKENS_BY_CONFIG_KEY = {key: tokens for key, tokens in config.TOKENS_BY_CONFIG_KEY.items()
                                       if key not in ("proxycommand", "proxyjump")}
        return config


def config_text(path: str | None) -> str:
    """The text of `--ssh-config path`, or of the user's and the system's files when None."""
    if path is None:
        texts = []
        # OpenSSH reads the user's file, then the system's: the first value obtained wins.
        for candidate, base in ((os.path.expanduser("~/.ssh/config"), os.path.expanduser("~/.ssh")),
                                (SYSTEM_SSH_CONFIG, os.path.dirname(SYSTEM_SSH_CONFIG))):
            try:
                texts.append(read_ssh_config(candidate, base))
            except OSError:
                pass
        return "".join(texts)
    try:
        return read_ssh_config(os.path.expanduser(path), os.path.expanduser("~/.ssh"))
    except OSError as exc:
        raise UsageError(f"--ssh-config {path}: {exc.strerror or exc}") from None
