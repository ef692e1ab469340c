"""Read Ansible inventories (YAML or INI, files or directories) into frozen hosts with merged variables.

Pure apart from reading the files it is given: `load_inventory` turns paths into an `Inventory`,
`inventory_from_text` does the same for a string, `default_inventory` reads the packaged one.
Every error is an InventoryError naming the file and, when the parser knows it, the line.

Variable precedence is the one Ansible documents, lowest first:

    1. `vars` of group `all` in the inventory files
    2. `vars` of the host's other groups, sorted by (depth, ansible_group_priority, name),
       so a child group (deeper) overrides its parents and same-depth groups merge alphabetically
    3. group_vars/all files             4. group_vars/<group> files, same order
    5. the host's own variables in the inventory files (`host:port` sets ansible_port)
    6. host_vars/<host> files

group_vars/ and host_vars/ are looked up beside each inventory file, or inside each inventory
directory, as Ansible's host_group_vars plugin does; a later -i source overrides an earlier one.
"""

from __future__ import annotations

import ast
import ipaddress
import itertools
import os
import re
import shlex
import string
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ..errors import InventoryError
from ..yamldepth import MAX_DEPTH, too_deep

__all__ = ["Host", "Inventory", "default_inventory", "expand_host_pattern", "inventory_from_text",
           "load_inventory"]

# --------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Host:
    """One inventory host: its alias, its fully merged variables and every group it belongs to."""

    name: str  # inventory alias
    vars: Mapping[str, Any] = field(hash=False)  # fully merged variables (Ansible precedence)
    # every group it belongs to, ancestors and "all" included, in precedence order ("all" first)
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inventory:
    """Hosts in inventory order (first appearance) and each group's hosts, children included."""

    hosts: tuple[Host, ...]
    groups: Mapping[str, tuple[str, ...]] = field(hash=False)  # "all" and "ungrouped" always present
    _by_name: Mapping[str, Host] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({h.name: h for h in self.hosts}))

    def host(self, name: str) -> Host:
        """The host with this inventory name; InventoryError if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise InventoryError(f"no host named {name!r} in the inventory") from None

    def has_host(self, name: str) -> bool:
        """Whether a host has exactly this inventory name."""
        return name in self._by_name


# ------------------------------------------------------------------------------------ entry points

PACKAGED_DEFAULT = "default_inventory.yml"
# Directory inventories skip what Ansible 2.19 skips by default (it no longer skips .ini files).
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig",
                     ".cfg", ".retry")
_VARS_DIRS = ("group_vars", "host_vars")
_YAML_SUFFIXES = (".yml", ".yaml", ".json")


def load_inventory(paths: Sequence[str | Path]) -> Inventory:
    """Read inventory files and directories, in order, into one Inventory, as `ansible -i a -i b`."""
    builder = _Builder()
    var_dirs: dict[Path, _VarsDir] = {}
    try:
        for given in paths:
            path = Path(given)
            if path.is_dir():
                for file in _directory_files(path):
                    _parse_file(file, builder)
                base = path
            elif path.exists():
                _parse_file(path, builder)
                base = path.parent
            else:
                raise InventoryError("inventory file or directory not found", path=str(given))
            key = base.resolve()
            if key not in var_dirs and any((base / d).is_dir() for d in _VARS_DIRS):
                var_dirs[key] = _VarsDir(base)
        return builder.build(list(var_dirs.values()))
    except OSError as exc:  # a directory we may not list, a file we may not stat...
        raise InventoryError(f"cannot read: {exc.strerror or exc}", path=str(exc.filename or "")) from None


def inventory_from_text(text: str, *, source: str = "<inventory>") -> Inventory:
    """Parse one inventory held in a string; `source` names it in errors (a .ini/.yml suffix decides)."""
    builder = _Builder()
    _parse_text(text, source, builder)
    return builder.build([])


def default_inventory() -> Inventory:
    """The packaged fallback inventory: only `localhost`, reached with a local connection."""
    package = __name__.rpartition(".")[0]
    text = resources.files(package).joinpath(PACKAGED_DEFAULT).read_text(encoding="utf-8")
    return inventory_from_text(text, source=f"{package}/{PACKAGED_DEFAULT}")


def _directory_files(directory: Path) -> Iterator[Path]:
    """Yield the inventory files in a directory, sorted and recursively, as Ansible picks them."""
    for name in sorted(os.listdir(directory)):
        if name.startswith(".") or name in _VARS_DIRS or name.endswith(_IGNORED_SUFFIXES):
            continue
        path = directory / name
        if path.is_dir():
            yield from _directory_files(path)
        else:
            yield path


MAX_FILE_BYTES = 64 * 2**20  # a 10 000-host inventory is a few MB


def _read_text(path: Path) -> str:
    """Takes a path, returns its text; every failure is an InventoryError naming the file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # bounded: `-i /dev/zero` must not eat the controller's memory
        if len(data) > MAX_FILE_BYTES:
            raise InventoryError(f"larger than {MAX_FILE_BYTES // 2**20} MiB: not an inventory", path=str(path))
        return data.decode("utf-8-sig")  # -sig: a BOM from a Windows editor is not a host
    except FileNotFoundError:
        raise InventoryError("inventory file not found", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InventoryError(f"not UTF-8 text (byte {exc.start})", path=str(path)) from None
    except OSError as exc:
        raise InventoryError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None


def _parse_file(path: Path, builder: _Builder) -> None:
    _parse_text(_read_text(path), str(path), builder)


def _parse_text(text: str, source: str, builder: _Builder) -> None:
    if text.startswith("#!"):
        raise InventoryError("executable inventory scripts are not supported; use YAML or INI", path=source,
                             line=1)
    if _looks_like_yaml(source, text):
        _YamlInventory(text, source, builder).parse()
    else:
        _parse_ini(text, source, builder)


_YAML_FIRST_LINE = re.compile(r"^(?:---|%|\{|[^\s\[=#;]+:(?:\s|$)|['\"][^'\"]*['\"]\s*:(?:\s|$))")


def _looks_like_yaml(source: str, text: str) -> bool:
    """Takes a file name and its text, returns True for YAML: by suffix, else by the first real line."""
    suffix = os.path.splitext(source)[1].lower()
    if suffix in _YAML_SUFFIXES:
        return True
    if suffix == ".ini":
        return False
    for line in text.splitlines():
        line = line.strip()
        if line and line[0] not in "#;":
            return bool(_YAML_FIRST_LINE.match(line))
    return False


# ------------------------------------------------------------------------------------- host patterns

_MAX_HOSTS_PER_PATTERN = 100_000


def expand_host_pattern(pattern: str) -> tuple[list[str], int | None]:
    """Takes an inventory host entry, returns its host names and the port it gives (or None).

    `www[01:50].example.com` → 50 zero-padded names; `db-[a:f]` letters; `[1:9:2]` a step;
    several ranges multiply; `badwolf.example.com:5309` → port 5309; IPv6 addresses stay whole,
    `[2001:db8::1]:22` gives a port. Raises InventoryError (without a file: the caller adds it).
    """
    name, port = _split_port(pattern.strip())
    if not name:
        raise InventoryError(f"empty host name in {pattern!r}")
    if "[" not in name and "]" not in name:
        return [name], port
    return _expand_ranges(name), port


def _split_port(pattern: str) -> tuple[str, int | None]:
    """Takes `host`, `host:port`, an IP address or `[ipv6]:port`; returns (host, port or None)."""
    if ":" not in pattern or _is_ip_address(pattern):
        return pattern, None
    bracketed = re.fullmatch(r"\[([0-9A-Fa-f:.%]+)\](?::(\d+))?", pattern)
    if bracketed and _is_ip_address(bracketed.group(1)):
        return bracketed.group(1), _port(bracketed.group(2), pattern)
    colons = [i for i, _ in _outside_brackets(pattern, ":")]
    if len(colons) != 1:
        return pattern, None  # a plain name, or something IPv6-like: Ansible keeps it whole too
    head, tail = pattern[:colons[0]], pattern[colons[0] + 1:]
    if not tail:
        raise InventoryError(f"host {pattern!r} ends with ':' but gives no port")
    return head, _port(tail, pattern)


def _port(text: str | None, pattern: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InventoryError(f"invalid port {text!r} in host {pattern!r}")
    return int(text)


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _outside_brackets(text: str, char: str) -> Iterator[tuple[int, str]]:
    depth = 0
    for i, c in enumerate(text):
        depth += (c == "[") - (c == "]")
        if c == char and depth == 0:
            yield i, c


def _expand_ranges(name: str) -> list[str]:
    """Takes a name holding one or more `[begin:end(:step)]` ranges, returns every name it stands for."""
    parts: list[list[str]] = []
    rest = name
    while "[" in rest:
        head, _, after = rest.partition("[")
        body, closed, rest = after.partition("]")
        if not closed:
            raise InventoryError(f"host range in {name!r} has no closing ']'")
        parts.append([head])
        parts.append(_range_values(body, name))
    if "]" in rest:
        raise InventoryError(f"host range in {name!r} has a ']' without '['")
    parts.append([rest])
    count = 1
    for part in parts:
        count *= len(part)
    if count > _MAX_HOSTS_PER_PATTERN:
        raise InventoryError(f"host range {name!r} stands for {count} hosts, more than "
                             f"{_MAX_HOSTS_PER_PATTERN}")
    return ["".join(combo) for combo in itertools.product(*parts)]


_DIGITS = re.compile(r"[0-9]{1,18}")  # int() refuses 4300+ digits; no fleet needs 19


def _range_values(body: str, name: str) -> list[str]:
    """Takes the inside of `[...]` (`01:50`, `a:f`, `1:9:2`), returns its values, formatted."""
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise InventoryError(f"host range [{body}] in {name!r} must be [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise InventoryError(f"host range [{body}] in {name!r} has no end")
    if not _DIGITS.fullmatch(step_text) or int(step_text) == 0:
        raise InventoryError(f"host range [{body}] in {name!r} has an invalid step {step_text!r}")
    step = int(step_text)
    if len(begin) == 1 and len(end) == 1 and begin in string.ascii_letters and end in string.ascii_letters:
        first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
        if first > last:
            raise InventoryError(f"host range [{body}] in {name!r} ends before it begins")
        return list(string.ascii_letters[first:last + 1:step])
    if not (_DIGITS.fullmatch(begin) and _DIGITS.fullmatch(end)):  # not isdigit(): it takes '²', int() does not
        raise InventoryError(f"host range [{body}] in {name!r} must be numbers or single letters")
    if int(begin) > int(end):
        raise InventoryError(f"host range [{body}] in {name!r} ends before it begins")
    count = (int(end) - int(begin)) // step + 1  # not len(range()): that overflows past 2**63
    if count > _MAX_HOSTS_PER_PATTERN:  # before building the list: h[0:99999999] is gigabytes of names
        raise InventoryError(f"host range {name!r} stands for {count} hosts or more, more than {_MAX_HOSTS_PER_PATTERN}")
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and len(end) != width:
        raise InventoryError(f"host range [{body}] in {name!r}: a zero-padded begin and its end must "
                             f"have the same number of digits")
    return [str(n).zfill(width) for n in range(int(begin), int(end) + 1, step)]


# ----------------------------------------------------------------------------------------- building

_Where = tuple[str, int | None]  # (file, line) for error messages


@dataclass
class _Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    priority: int = 1  # Ansible's default ansible_group_priority


@dataclass
class _HostDef:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, None] = field(default_factory=dict)  # direct groups, an ordered set


class _Builder:
    """The mutable inventory the parsers fill in, file after file; `build` freezes it."""

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {"all": _Group("all"), "ungrouped": _Group("ungrouped")}
        self.hosts: dict[str, _HostDef] = {}
        self.add_child("all", "ungrouped", ("<builtin>", None))

    def add_group(self, name: str, where: _Where) -> _Group:
        if not name:
            raise InventoryError("empty group name", path=where[0], line=where[1])
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = _Group(name)
        return group

    def add_child(self, parent: str, child: str, where: _Where) -> None:
        if child == "all":
            raise InventoryError(f"group 'all' cannot be a child of {parent!r}", path=where[0], line=where[1])
        if child in self.groups[parent].children:
            return
        if child == parent or self._reaches(child, parent):
            raise InventoryError(f"making {child!r} a child of {parent!r} creates a cycle of children",
                                 path=where[0], line=where[1])
        self.groups[parent].children.append(child)
        self.groups[child].parents.append(parent)

    def _reaches(self, start: str, target: str) -> bool:
        """Whether `target` is a descendant of `start`."""
        todo, seen = [start], set()
        while todo:
            for child in self.groups[todo.pop()].children:
                if child == target:
                    return True
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return False

    def set_group_var(self, group: str, key: Any, value: Any, where: _Where) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                raise InventoryError(f"ansible_group_priority of group {group!r} must be an integer, "
                                     f"got {value!r}", path=where[0], line=where[1]) from None
        self.groups[group].vars[key] = value

    def add_hosts(self, pattern: str, group: str, variables: Mapping[Any, Any], where: _Where) -> None:
        try:
            names, port = expand_host_pattern(pattern)
        except InventoryError as exc:
            raise InventoryError(str(exc), path=where[0], line=where[1]) from None
        for name in names:
            host = self.hosts.get(name)
            if host is None:
                host = self.hosts[name] = _HostDef(name)
            host.groups[group] = None
            if port is not None:
                host.vars["ansible_port"] = port
            host.vars.update(variables)

    def build(self, var_dirs: Sequence[_VarsDir]) -> Inventory:
        """Link orphans to `all`, fill `ungrouped`, then merge every host's variables in Ansible's order."""
        for group in list(self.groups.values()):
            if group.name != "all" and not group.parents:
                self.add_child("all", group.name, ("<builtin>", None))
        for host in self.hosts.values():
            if any(g not in ("all", "ungrouped") for g in host.groups):
                host.groups.pop("ungrouped", None)
            else:
                host.groups["ungrouped"] = None

        depth: dict[str, int] = {"all": 0}
        ancestors: dict[str, frozenset[str]] = {"all": frozenset(("all",))}

        def depth_of(name: str) -> int:
            if name not in depth:
                depth[name] = 1 + max(depth_of(p) for p in self.groups[name].parents)
            return depth[name]

        def ancestors_of(name: str) -> frozenset[str]:
            if name not in ancestors:
                found = {name}
                for parent in self.groups[name].parents:
                    found |= ancestors_of(parent)
                ancestors[name] = frozenset(found)
            return ancestors[name]

        def precedence(name: str) -> tuple[int, int, str]:
            return depth_of(name), self.groups[name].priority, name

        group_layer: dict[tuple[str, ...], dict[str, Any]] = {}  # hosts sharing groups share the merge
        members: dict[str, list[str]] = {name: [] for name in self.groups}
        hosts = []
        for hdef in self.hosts.values():
            names: set[str] = {"all"}
            for direct in hdef.groups:
                names |= ancestors_of(direct)
            ordered = tuple(sorted(names, key=precedence))
            for name in ordered:
                members[name].append(hdef.name)
            if ordered not in group_layer:
                group_layer[ordered] = self._group_vars(ordered, var_dirs)
            merged = dict(group_layer[ordered])
            merged.update(hdef.vars)
            for var_dir in var_dirs:
                merged.update(var_dir.host_vars(hdef.name))
            hosts.append(Host(hdef.name, MappingProxyType(merged), ordered))
        groups = MappingProxyType({name: tuple(m) for name, m in members.items()})
        return Inventory(tuple(hosts), groups)

    def _group_vars(self, ordered: tuple[str, ...], var_dirs: Sequence[_VarsDir]) -> dict[str, Any]:
        """Takes a host's groups in precedence order ("all" first), returns their merged variables."""
        merged: dict[str, Any] = {}
        for name in ordered:
            merged.update(self.groups[name].vars)
        for var_dir in var_dirs:
            merged.update(var_dir.group_vars("all"))
        for var_dir in var_dirs:  # Ansible's loop: per source, then per group
            for name in ordered[1:]:
                merged.update(var_dir.group_vars(name))
        return merged


# --------------------------------------------------------------------------------------------- YAML

_YamlBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _YamlLoader(_YamlBase):  # type: ignore[misc]
    """The fastest safe loader, taught Ansible's `!unsafe` tag; `!vault` gets a clear error."""


def _construct_unsafe(loader: Any, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


def _construct_vault(loader: Any, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(None, None, "Ansible Vault values (!vault) are not supported",
                                            node.start_mark)


_YamlLoader.add_constructor("!unsafe", _construct_unsafe)
_YamlLoader.add_constructor("!vault", _construct_vault)
_NULL_TAG = "tag:yaml.org,2002:null"


def _yaml_error(exc: yaml.YAMLError, source: str) -> InventoryError:
    """Takes a PyYAML error, returns an InventoryError with the file and the 1-based line."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{problem} ({exc.context})"
        return InventoryError(f"invalid YAML: {problem}", path=source, line=mark.line + 1 if mark else None)
    return InventoryError(f"invalid YAML: {exc}", path=source)


def _check_depth(text: str, source: str) -> None:
    """Refuses YAML nested deeper than MAX_DEPTH before it is composed into nodes (see yamldepth)."""
    try:
        line = too_deep(text, _YamlBase)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    if line is not None:
        raise InventoryError(f"YAML nested deeper than {MAX_DEPTH} levels", path=source, line=line)


class _YamlDocument:
    """One YAML document kept as nodes, so structure errors can name the line of what is wrong."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        _check_depth(text, source)
        self.loader = _YamlLoader(text)
        try:
            self.root: yaml.Node | None = self.loader.get_single_node()
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, source) from None

    def line(self, node: yaml.Node) -> int:
        return int(node.start_mark.line) + 1

    def where(self, node: yaml.Node) -> _Where:
        return self.source, self.line(node)

    def error(self, message: str, node: yaml.Node) -> InventoryError:
        return InventoryError(message, path=self.source, line=self.line(node))

    def value(self, node: yaml.Node) -> Any:
        """Takes a node, returns the Python value it stands for (anchors and merge keys resolved)."""
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, self.source) from None

    def pairs(self, node: yaml.MappingNode) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """Takes a mapping node, returns (key text, key node, value node) with `<<` merges applied."""
        try:
            self.loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, self.source) from None
        result: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == _NULL_TAG:
                raise self.error("a key here must be a plain name", key)
            result.append((str(key.value), key, value))
        return result


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value!r}"


class _YamlInventory:
    """Ansible's YAML inventory: top-level groups, each with `hosts`, `children` and `vars`."""

    def __init__(self, text: str, source: str, builder: _Builder) -> None:
        self.doc = _YamlDocument(text, source)
        self.builder = builder
        self.open_groups: set[int] = set()  # ids of group nodes being parsed: an alias may loop back

    def parse(self) -> None:
        root = self.doc.root
        if root is None or _is_null(root):
            return  # an empty file (or only comments) adds nothing
        if not isinstance(root, yaml.MappingNode):
            raise self.doc.error(f"a YAML inventory must be a mapping of group names, not {_kind(root)}",
                                 root)
        for name, key, node in self.doc.pairs(root):
            if name == "plugin":
                raise self.doc.error("inventory plugin configurations are not supported; "
                                     "use a plain YAML inventory", key)
            self._group(name, key, node)

    def _group(self, name: str, key: yaml.Node, node: yaml.Node) -> None:
        self.builder.add_group(name, self.doc.where(key))
        if _is_null(node):
            return
        if not isinstance(node, yaml.MappingNode):
            raise self.doc.error(f"group {name!r} must be a mapping (hosts, children, vars), "
                                 f"not {_kind(node)}", node)
        if id(node) in self.open_groups:
            raise self.doc.error(f"group {name!r} contains itself through a YAML alias", key)
        self.open_groups.add(id(node))
        try:
            self._sections(name, node)
        finally:
            self.open_groups.discard(id(node))

    def _sections(self, name: str, node: yaml.MappingNode) -> None:
        for section, section_key, value in self.doc.pairs(node):
            if section not in ("hosts", "children", "vars"):
                raise self.doc.error(f"group {name!r} has an unknown key {section!r}; "
                                     f"expected hosts, children or vars", section_key)
            if _is_null(value):
                continue
            if section == "vars":
                self._vars(name, value)
            elif section == "children":
                for child, child_key, child_node in self._entries(value, f"children of group {name!r}"):
                    self._group(child, child_key, child_node)
                    self.builder.add_child(name, child, self.doc.where(child_key))
            else:
                for pattern, host_key, host_node in self._entries(value, f"hosts of group {name!r}"):
                    self._host(name, pattern, host_key, host_node)

    def _vars(self, group: str, node: yaml.Node) -> None:
        if not isinstance(node, yaml.MappingNode):
            raise self.doc.error(f"vars of group {group!r} must be a mapping, not {_kind(node)}", node)
        for key, value in self.doc.value(node).items():
            self.builder.set_group_var(group, key, value, self.doc.where(node))

    def _host(self, group: str, pattern: str, key: yaml.Node, node: yaml.Node) -> None:
        if _is_null(node):
            variables = {}
        elif isinstance(node, yaml.MappingNode):
            variables = self.doc.value(node)
        else:
            raise self.doc.error(f"variables of host {pattern!r} must be a mapping, not {_kind(node)}", node)
        self.builder.add_hosts(pattern, group, variables, self.doc.where(key))

    def _entries(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """Takes a `hosts`/`children` node, returns (name, key node, value node); a lone name is allowed."""
        if isinstance(node, yaml.ScalarNode):
            return [(str(node.value), node, yaml.ScalarNode(_NULL_TAG, "", node.start_mark, node.end_mark))]
        if not isinstance(node, yaml.MappingNode):
            raise self.doc.error(f"{what} must be a mapping, not {_kind(node)}", node)
        return self.doc.pairs(node)


# ---------------------------------------------------------------------------------------------- INI

_INI_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_INI_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:[#;].*)?$")


def _parse_ini(text: str, source: str, builder: _Builder) -> None:
    """Ansible's INI inventory: `[group]`, `[group:vars]`, `[group:children]`, hosts before any section
    are ungrouped; a `[g:vars]` or `[p:children]` naming a group never defined is an error, as in Ansible."""
    group, kind = "ungrouped", "hosts"
    pending_children: dict[str, list[tuple[str, int]]] = {}  # child -> [(parent, line)]
    pending_vars: dict[str, int] = {}  # group -> line of its [group:vars]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = (source, lineno)
        section = _INI_SECTION.match(line)
        if section:
            group, kind = section.group(1), section.group(2) or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise InventoryError(f"section [{group}:{kind}] has an unknown type {kind!r}; "
                                     f"expected [{group}], [{group}:vars] or [{group}:children]",
                                     path=source, line=lineno)
            if kind == "vars":
                if group not in builder.groups and group not in pending_children:
                    pending_vars[group] = lineno
                builder.add_group(group, where)
            else:
                builder.add_group(group, where)
                pending_vars.pop(group, None)
                for parent, parent_line in pending_children.pop(group, []):
                    builder.add_child(parent, group, (source, parent_line))
            continue
        if line.startswith("["):
            raise InventoryError(f"invalid section header {line!r} (no spaces allowed inside the brackets)",
                                 path=source, line=lineno)
        if kind == "hosts":
            _ini_host_line(line, group, where, builder)
        elif kind == "vars":
            key, equals, value = line.partition("=")
            if not equals or not key.strip():
                raise InventoryError(f"expected key=value in [{group}:vars], got {line!r}", path=source,
                                     line=lineno)
            builder.set_group_var(group, key.strip(), _ini_value(value.strip()), where)
        else:
            child = _INI_GROUP_NAME.match(line)
            if not child:
                raise InventoryError(f"expected a group name in [{group}:children], got {line!r}",
                                     path=source, line=lineno)
            if child.group(1) in builder.groups:
                builder.add_child(group, child.group(1), where)
            else:
                pending_children.setdefault(child.group(1), []).append((group, lineno))
    problems = [(at, f"section [{name}:vars] is for group {name!r}, which is never defined")
                for name, at in pending_vars.items()]
    problems += [(at, f"[{parent}:children] lists group {name!r}, which is never defined")
                 for name, uses in pending_children.items() for parent, at in uses]
    if problems:
        at, message = min(problems)
        raise InventoryError(message, path=source, line=at)


def _ini_host_line(line: str, group: str, where: _Where, builder: _Builder) -> None:
    """`host[01:10].example.com:2222 key=value key2="a b"  # comment`, shell-quoted like Ansible's."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(f"cannot parse host line: {exc}", path=where[0], line=where[1]) from None
    if not tokens:
        return
    if tokens[0] == "---":
        raise InventoryError("'---' is not a host; is this a YAML file with the wrong suffix?",
                             path=where[0], line=where[1])
    variables: dict[str, Any] = {}
    for token in tokens[1:]:
        key, equals, value = token.partition("=")
        if not equals or not key:
            raise InventoryError(f"expected key=value after host {tokens[0]!r}, got {token!r}",
                                 path=where[0], line=where[1])
        variables[key] = _ini_value(value)
    builder.add_hosts(tokens[0], group, variables, where)


def _ini_value(text: str) -> Any:
    """Takes an INI value, returns it as Ansible's INI plugin does: a Python literal when it is one
    (`2222`, `True`, `[1, 2]`, `'quoted'`), else the text itself.

    Ansible documents `[group:vars]` values as strings but its code literal-evaluates them exactly
    like inline host variables; we follow the code, so an inventory behaves the same in both tools.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value, text)


def _plain(value: Any, text: str) -> Any:
    """Keeps what YAML could also have given (str, bool, int, float, None, list, dict); bytes become
    text, tuples and sets lists; anything else (complex, Ellipsis) stays the original text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, str(v)) for v in value]
    if isinstance(value, dict):
        return {_plain_key(k): _plain(v, str(v)) for k, v in value.items()}
    return text


def _plain_key(key: Any) -> Any:
    plain = _plain(key, str(key))
    return str(key) if isinstance(plain, (list, dict)) else plain  # a tuple key would become unhashable


# ----------------------------------------------------------------------------- group_vars, host_vars


class _VarsDir:
    """group_vars/ and host_vars/ under one base directory, read on demand and once per name."""

    _RANK = {"": 0, ".yml": 1, ".yaml": 2, ".json": 3}  # Ansible's order when several match

    def __init__(self, base: Path) -> None:
        self.index = {kind: self._index(base / kind) for kind in _VARS_DIRS}
        self.cache: dict[tuple[str, str], Mapping[str, Any]] = {}

    def group_vars(self, name: str) -> Mapping[str, Any]:
        return self._vars("group_vars", name)

    def host_vars(self, name: str) -> Mapping[str, Any]:
        return self._vars("host_vars", name)

    def _index(self, directory: Path) -> dict[str, list[Path]]:
        """Takes group_vars/ or host_vars/, returns entity name -> its files, in Ansible's order."""
        if not directory.is_dir():
            return {}
        ranked: dict[str, list[tuple[int, Path]]] = {}
        for entry in sorted(os.listdir(directory)):
            if entry.startswith(".") or entry.endswith("~"):
                continue
            ranked.setdefault(entry, []).append((0, directory / entry))
            stem, suffix = os.path.splitext(entry)
            if suffix in _YAML_SUFFIXES:
                ranked.setdefault(stem, []).append((self._RANK[suffix], directory / entry))
        return {name: [p for _, p in sorted(found)] for name, found in ranked.items()}

    def _vars(self, kind: str, name: str) -> Mapping[str, Any]:
        key = (kind, name)
        if key not in self.cache:
            merged: dict[str, Any] = {}
            for path in self.index[kind].get(name, ()):
                for file in _vars_files(path):
                    merged.update(_load_vars_file(file))
            self.cache[key] = merged
        return self.cache[key]


def _vars_files(path: Path) -> Iterator[Path]:
    """A vars file itself, or a vars directory's files (recursively, sorted, YAML/JSON or no suffix)."""
    if not path.is_dir():
        yield path
        return
    for entry in sorted(os.listdir(path)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        full = path / entry
        suffix = os.path.splitext(entry)[1]
        if full.is_dir() and not suffix:
            yield from _vars_files(full)
        elif full.is_file() and (not suffix or suffix in _YAML_SUFFIXES):
            yield full


def _load_vars_file(path: Path) -> Mapping[str, Any]:
    """Takes a group_vars/host_vars file, returns its mapping (empty file: nothing)."""
    doc = _YamlDocument(_read_text(path), str(path))
    if doc.root is None or _is_null(doc.root):
        return {}
    if not isinstance(doc.root, yaml.MappingNode):
        raise doc.error(f"a variables file must hold a mapping, not {_kind(doc.root)}", doc.root)
    value: Mapping[str, Any] = doc.value(doc.root)
    return value
