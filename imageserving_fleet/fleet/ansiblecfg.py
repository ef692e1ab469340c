"""ansible.cfg and the ANSIBLE_* variables as ansible-core 2.19 reads them, each setting with its source.

    find_config_file(env, cwd)    -> (path or None, warnings)   ansible-core's search, first found alone
    load_ansible_config(env, cwd) -> AnsibleSettings            the settings the fleet honours, each a
                                                                Sourced(value, "where it came from")

The search (config/manager.py `find_ini_config_file`): `ANSIBLE_CONFIG` (a directory means its
ansible.cfg), `./ansible.cfg` unless the current directory is world-writable, `~/.ansible.cfg`,
`/etc/ansible/ansible.cfg`. The file is read with configparser as ansible-core reads it (`;` starts
an inline comment, no interpolation); an ANSIBLE_* variable beats the file; of several names for
one setting, the last one set wins (ansible-core's `_loop_entries`). Paths in the file are relative
to the file's directory, paths in the environment to the current one; `~` and `$VARS` expand
(private_key_file is the ssh plugin's: `~` expands, a relative path stays relative to the current
directory, as ssh itself reads it).

Honoured: [defaults] inventory, remote_user, remote_port, private_key_file, forks, timeout,
host_key_checking, ask_pass (as -k); [privilege_escalation] become, become_user, become_method,
become_ask_pass (as -K); [ssh_connection] ssh_args, ssh_common_args, ssh_extra_args (and the
[ssh_connection] aliases of timeout and host_key_checking). Any other key of [ssh_connection] or
[privilege_escalation] that would change how a host is reached is named in one warning; the rest of
the file (roles, callbacks, facts...) is about playbooks and changes nothing here.

Errors (AnsibleConfigError, exit 1): a file that cannot be read or parsed (with its line), a value
of the wrong type (with the file and line or the variable).
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import AnsibleConfigError

T = TypeVar("T")

_TRUE = frozenset(("y", "yes", "on", "1", "true", "t"))  # ansible's BOOLEANS_TRUE; anything else is False


@dataclass(frozen=True)
class Sourced(Generic[T]):
    """A setting's value and where it came from, as `hosts` shows it."""

    value: T
    source: str  # "ansible.cfg /p/ansible.cfg:4 remote_user", "env ANSIBLE_REMOTE_USER", "command line -u"...


@dataclass(frozen=True)
class _Spec:
    ini: tuple[tuple[str, str], ...]
    env: tuple[str, ...]
    kind: str  # str | bool | int | port | path | pathlist | args


_SPECS: dict[str, _Spec] = {
    "inventory": _Spec((("defaults", "inventory"),), ("ANSIBLE_INVENTORY",), "pathlist"),
    "remote_user": _Spec((("defaults", "remote_user"),), ("ANSIBLE_REMOTE_USER",), "str"),
    "remote_port": _Spec((("defaults", "remote_port"),), ("ANSIBLE_REMOTE_PORT",), "port"),
    # The ssh plugin reads it as a string and hands it to ssh with only ~ expanded: a relative path is
    # relative to the current directory (where ssh runs), not to the file's (plugins/connection/ssh.py).
    "private_key_file": _Spec((("defaults", "private_key_file"),), ("ANSIBLE_PRIVATE_KEY_FILE",), "userpath"),
    "forks": _Spec((("defaults", "forks"),), ("ANSIBLE_FORKS",), "int"),
    "timeout": _Spec((("defaults", "timeout"), ("ssh_connection", "timeout")),
                     ("ANSIBLE_TIMEOUT", "ANSIBLE_SSH_TIMEOUT"), "int"),
    "host_key_checking": _Spec((("defaults", "host_key_checking"), ("ssh_connection", "host_key_checking")),
                               ("ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_SSH_HOST_KEY_CHECKING"), "bool"),
    "become": _Spec((("privilege_escalation", "become"),), ("ANSIBLE_BECOME",), "bool"),
    "become_user": _Spec((("privilege_escalation", "become_user"),), ("ANSIBLE_BECOME_USER",), "str"),
    "become_method": _Spec((("privilege_escalation", "become_method"),), ("ANSIBLE_BECOME_METHOD",), "str"),
    "ssh_args": _Spec((("ssh_connection", "ssh_args"),), ("ANSIBLE_SSH_ARGS",), "args"),
    "ssh_common_args": _Spec((("ssh_connection", "ssh_common_args"),), ("ANSIBLE_SSH_COMMON_ARGS",), "args"),
    "ssh_extra_args": _Spec((("ssh_connection", "ssh_extra_args"),), ("ANSIBLE_SSH_EXTRA_ARGS",), "args"),
    # [defaults] ask_pass / [privilege_escalation] become_ask_pass: as -k / -K
    "ask_pass": _Spec((("defaults", "ask_pass"),), ("ANSIBLE_ASK_PASS",), "bool"),
    "become_ask_pass": _Spec((("privilege_escalation", "become_ask_pass"),), ("ANSIBLE_BECOME_ASK_PASS",), "bool"),
}
# Keys of the connection sections that change nothing for the fleet (it runs no modules and copies
# no files through them): not worth a warning. Any other key there is named in one warning.
_NO_EFFECT = {
    "ssh_connection": {"pipelining", "control_path", "control_path_dir", "scp_if_ssh", "transfer_method",
                       "ssh_transfer_method", "sftp_batch_mode", "scp_extra_args", "sftp_extra_args", "usetty"},
    "privilege_escalation": set(),
}


@dataclass(frozen=True)
class AnsibleSettings:
    """What ansible.cfg and ANSIBLE_* say, for the settings the fleet honours; None: not set."""

    path: str | None = None  # the ansible.cfg read, if any
    inventory: Sourced[tuple[str, ...]] | None = None
    remote_user: Sourced[str] | None = None
    remote_port: Sourced[int] | None = None
    private_key_file: Sourced[str] | None = None
    forks: Sourced[int] | None = None
    timeout: Sourced[int] | None = None
    host_key_checking: Sourced[bool] | None = None
    become: Sourced[bool] | None = None
    become_user: Sourced[str] | None = None
    become_method: Sourced[str] | None = None
    ssh_args: Sourced[tuple[str, ...]] | None = None
    ssh_common_args: Sourced[tuple[str, ...]] | None = None
    ssh_extra_args: Sourced[tuple[str, ...]] | None = None
    ask_pass: Sourced[bool] | None = None
    become_ask_pass: Sourced[bool] | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def ssh_arg_sources(self) -> list[Sourced[tuple[str, ...]]]:
        """ssh_args, ssh_common_args, ssh_extra_args in the order ansible-core puts them on ssh's line."""
        return [s for s in (self.ssh_args, self.ssh_common_args, self.ssh_extra_args) if s is not None]


def find_config_file(env: Mapping[str, str], cwd: str) -> tuple[str | None, list[str]]:
    """Takes the environment and the current directory; returns the ansible.cfg ansible-core would
    read (or None) and the warnings it would give (a world-writable current directory)."""
    warnings: list[str] = []
    candidates: list[str] = []
    if "ANSIBLE_CONFIG" in env:
        given = _expand(env["ANSIBLE_CONFIG"], cwd)
        candidates.append(os.path.join(given, "ansible.cfg") if os.path.isdir(given) else given)
    local = os.path.join(cwd, "ansible.cfg")
    try:
        if os.stat(cwd).st_mode & stat.S_IWOTH:
            if os.path.exists(local):
                warnings.append(f"{local} ignored: {cwd} is world-writable (as ansible-core does)")
        else:
            candidates.append(local)
    except OSError:
        pass
    candidates.append(_expand("~/.ansible.cfg", cwd))
    candidates.append("/etc/ansible/ansible.cfg")
    for path in candidates:
        if os.path.exists(path) and os.access(path, os.R_OK):
            return path, warnings
    return None, warnings


def load_ansible_config(env: Mapping[str, str] | None = None, cwd: str | None = None) -> AnsibleSettings:
    """Finds and reads ansible.cfg and the ANSIBLE_* variables; returns the honoured settings with
    their sources, or raises AnsibleConfigError naming the file and line (or the variable)."""
    env = os.environ if env is None else env
    cwd = os.getcwd() if cwd is None else cwd
    path, warnings = find_config_file(env, cwd)
    parser, lines = (_read(path) if path else (None, {}))
    found: dict[str, Any] = {}
    for name, spec in _SPECS.items():
        value: Sourced[Any] | None = None
        for section, key in spec.ini:  # of several entries, the last one set wins
            if parser is not None and parser.has_option(section, key):
                assert path is not None
                line = lines.get((section, key))
                where = f"{path}:{line}" if line else path
                raw = parser.get(section, key, raw=True)
                value = Sourced(_convert(raw, spec.kind, os.path.dirname(path), f"{where} {key}"),
                                f"ansible.cfg {where} {key}")
        for var in spec.env:
            if var in env:
                value = Sourced(_convert(env[var], spec.kind, cwd, f"environment variable {var}"), f"env {var}")
        if value is not None:
            found[name] = value
    if parser is not None:
        assert path is not None
        honoured = {entry for spec in _SPECS.values() for entry in spec.ini}
        ignored = [f"[{section}] {key} ({path}:{lines.get((section, key), '?')})"
                   for section, no_effect in _NO_EFFECT.items() if parser.has_section(section)
                   for key in parser[section] if (section, key) not in honoured and key not in no_effect
                   and key not in parser.defaults()]
        if ignored:
            warnings.append("imageserving-fleet: warning: ansible.cfg settings not honoured by imageserving-fleet: "
                            + "; ".join(ignored))
    return AnsibleSettings(path=path, warnings=tuple(warnings), **found)


def _read(path: str) -> tuple[configparser.ConfigParser, dict[tuple[str, str], int]]:
    """Parses ansible.cfg as ansible-core does; returns the parser and (section, key) -> line number."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnsibleConfigError(f"not UTF-8 (byte {exc.start})", path=path) from None
    except OSError as exc:
        raise AnsibleConfigError(f"cannot read: {exc.strerror or exc}", path=path) from None
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",))
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as exc:
        raise AnsibleConfigError(f"{exc.line.strip()!r} comes before any [section]", path=path,
                                 line=exc.lineno) from None
    except configparser.ParsingError as exc:
        line, content = exc.errors[0] if exc.errors else (None, "")
        raise AnsibleConfigError(f"cannot parse {content.strip()!r} (expected [section] or key = value)",
                                 path=path, line=line) from None
    except (configparser.DuplicateOptionError, configparser.DuplicateSectionError) as exc:
        what = f"option {exc.option!r} in [{exc.section}]" if isinstance(exc, configparser.DuplicateOptionError) \
            else f"section [{exc.section}]"
        raise AnsibleConfigError(f"{what} appears twice", path=path, line=exc.lineno) from None
    except configparser.Error as exc:
        raise AnsibleConfigError(str(exc).splitlines()[0], path=path) from None
    return parser, _option_lines(text)


_SECTION = re.compile(r"^\[([^\]]+)\]")
_OPTION = re.compile(r"^([^\s=:;#][^=:]*?)\s*[=:]")


def _option_lines(text: str) -> dict[tuple[str, str], int]:
    """(section, key lower-cased, as configparser stores it) -> the line it is set on."""
    lines: dict[tuple[str, str], int] = {}
    section = None
    for number, line in enumerate(text.splitlines(), 1):
        if match := _SECTION.match(line):
            section = match.group(1).strip()
        elif section is not None and (match := _OPTION.match(line)):
            lines[(section, match.group(1).strip().lower())] = number
    return lines


def _expand(path: str, basedir: str) -> str:
    """ansible-core's unfrackpath: `{{CWD}}`, `$VARS` and `~` expanded, relative to `basedir`."""
    path = os.path.expanduser(os.path.expandvars(path.replace("{{CWD}}", os.getcwd())))
    return os.path.normpath(os.path.join(basedir, path))


def _convert(raw: str, kind: str, basedir: str, where: str) -> Any:
    text = raw.strip()
    if kind == "str":
        return text
    if kind == "bool":
        return text.lower() in _TRUE
    if kind in ("int", "port"):
        try:
            number = int(text)
        except ValueError:
            raise AnsibleConfigError(f"{where}: expected a whole number, got {text!r}") from None
        if kind == "port" and not 0 < number < 65536:
            raise AnsibleConfigError(f"{where}: expected a port number 1-65535, got {text!r}")
        if kind == "int" and number < 1:
            raise AnsibleConfigError(f"{where}: expected a number above 0, got {text!r}")
        return number
    if kind == "userpath":
        return os.path.expanduser(text)
    if kind == "pathlist":
        return tuple(_expand(part.strip(), basedir) for part in text.split(",") if part.strip())
    if kind == "args":
        try:
            return tuple(shlex.split(text))
        except ValueError as exc:
            raise AnsibleConfigError(f"{where}: cannot split {text!r}: {exc}") from None
    raise AssertionError(kind)
