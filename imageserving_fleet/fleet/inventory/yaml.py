"""Ansible's YAML inventory (plugins/inventory/yaml.py): top-level groups with hosts, children, vars.

Takes a file's text and a Builder and adds what the file defines; every structure error is an
InventoryError naming the file and the line of the offending node. `YamlDocument` is shared with
the group_vars/host_vars reader.
"""

from __future__ import annotations

from typing import Any

import yaml

from ...errors import InventoryError
from ...yamldepth import MAX_DEPTH, too_deep
from .builder import Builder, Where

__all__ = ["YamlDocument", "describe", "is_null", "parse_yaml"]


def parse_yaml(text: str, source: str, builder: Builder) -> None:
    """Takes a YAML inventory's text and its file name; adds its groups and hosts to the builder."""
    _YamlInventory(text, source, builder).parse()


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


class YamlDocument:
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

    def where(self, node: yaml.Node) -> Where:
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


def is_null(node: yaml.Node) -> bool:
    """Whether a node is YAML's null (`~`, `null` or nothing at all)."""
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def describe(node: yaml.Node) -> str:
    """Takes a node, returns what it is in words, for messages (`a list`, `the value 'x'`)."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value!r}"


class _YamlInventory:
    """Ansible's YAML inventory: top-level groups, each with `hosts`, `children` and `vars`."""

    def __init__(self, text: str, source: str, builder: Builder) -> None:
        self.doc = YamlDocument(text, source)
        self.builder = builder
        self.open_groups: set[int] = set()  # ids of group nodes being parsed: an alias may loop back

    def parse(self) -> None:
        root = self.doc.root
        if root is None or is_null(root):
            return  # an empty file (or only comments) adds nothing
        if not isinstance(root, yaml.MappingNode):
            raise self.doc.error(f"a YAML inventory must be a mapping of group names, not {describe(root)}",
                                 root)
        for name, key, node in self.doc.pairs(root):
            if name == "plugin":
                raise self.doc.error("inventory plugin configurations are not supported; "
                                     "use a plain YAML inventory", key)
            self._group(name, key, node)

    def _group(self, name: str, key: yaml.Node, node: yaml.Node) -> None:
        self.builder.add_group(name, self.doc.where(key))
        if is_null(node):
            return
        if not isinstance(node, yaml.MappingNode):
            raise self.doc.error(f"group {name!r} must be a mapping (hosts, children, vars), "
                                 f"not {describe(node)}", node)
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
            if is_null(value):
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
            raise self.doc.error(f"vars of group {group!r} must be a mapping, not {describe(node)}", node)
        for key, value in self.doc.value(node).items():
            self.builder.set_group_var(group, key, value, self.doc.where(node))

    def _host(self, group: str, pattern: str, key: yaml.Node, node: yaml.Node) -> None:
        if is_null(node):
            variables = {}
        elif isinstance(node, yaml.MappingNode):
            variables = self.doc.value(node)
        else:
            raise self.doc.error(f"variables of host {pattern!r} must be a mapping, not {describe(node)}", node)
        self.builder.add_hosts(pattern, group, variables, self.doc.where(key))

    def _entries(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """Takes a `hosts`/`children` node, returns (name, key node, value node); a lone name is allowed."""
        if isinstance(node, yaml.ScalarNode):
            return [(str(node.value), node, yaml.ScalarNode(_NULL_TAG, "", node.start_mark, node.end_mark))]
        if not isinstance(node, yaml.MappingNode):
            raise self.doc.error(f"{what} must be a mapping, not {describe(node)}", node)
        return self.doc.pairs(node)
