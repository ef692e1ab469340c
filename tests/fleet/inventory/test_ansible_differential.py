"""The differential test: host selection and connection variables agree with ansible-core's.

Runs when ansible-core is importable (it is in the `bench` extra; skipped otherwise). Over the
repository's inventories, the pattern tests' inventories and a few hundred generated ones (YAML
and INI, children, ranges, group_vars/host_vars, localhost-like names, legacy ansible_ssh_*
variables), it asks ansible-core (in a child process: tests/fleet/inventory/ansible_oracle.py)
and this package the same questions and compares:

- whether the inventory loads at all;
- for each pattern, the set of hosts `ansible PATTERN` selects (no match and an error agree:
  this tool refuses both, exit 1, where ansible-core warns "no hosts matched");
- for each host, its merged variables and where it connects (host, port, user, connection).

Order is not compared: `ansible PATTERN` lists hosts in pattern order, this tool in inventory order.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from imageserving_fleet.errors import InventoryError, UsageError
from imageserving_fleet.fleet.inventory import Inventory, load_inventory, select
from imageserving_fleet.fleet.target import FleetOptions, make_target

from .helpers import REPO
from .test_patterns import FLEET_TEXT, LETTERS_TEXT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ansible") is None,
                                reason="ansible-core is not installed (pip install -e '.[bench]')")

ORACLE = Path(__file__).with_name("ansible_oracle.py")
# inventories, about 26 patterns each; a longer hunt: DIFFERENTIAL_INVENTORIES=2000 DIFFERENTIAL_SEED=7
GENERATED = int(os.environ.get("DIFFERENTIAL_INVENTORIES", "200"))
SEED = int(os.environ.get("DIFFERENTIAL_SEED", "20261201"))
LOCALHOSTS = ["localhost", "127.0.0.1", "::1"]
_SUBSCRIPTED = re.compile(r"([^:,&!]+)\[-?[0-9]+(?:[:-][0-9]*)?\](?=$|[:,])")


# ------------------------------------------------------------------------------------ the cases

# sources, patterns, and the groups whose hosts ansible-core orders by chance: Group._walk_relationship
# walks a set of groups (hashed by id) below a group's children, and subscripts count in that order.
Case = tuple[list[str], list[str], set[str]]


def generated_inventory(rng: random.Random, directory: Path) -> Case:
    """Writes one random inventory under `directory`; returns its sources, the patterns to ask and
    the groups that have grandchildren (`all`, when any group has children)."""
    groups = [f"g{i}" for i in range(rng.randint(1, 5))]
    if rng.random() < 0.15:
        groups.append("localhost")
    if rng.random() < 0.2:
        groups.append(rng.choice(["web-a", "Web", "db_1"]))
    hosts = [f"h{i}" for i in range(rng.randint(1, 7))]
    extra = rng.sample(["web[1:3]", "db-[a:c]", "[1:2].example.com", "127.0.0.1", "localhost", "::1",
                        "n[01:10:3]", "p1:2222", "[2001:db8::1]:2200", "h0:2201"], k=rng.randint(0, 3))
    members: dict[str, list[str]] = {g: [] for g in groups}
    children: dict[str, list[str]] = {g: [] for g in groups}
    for entry in hosts + extra:
        for group in rng.sample(groups, k=rng.randint(0, min(2, len(groups)))):
            members[group].append(entry)
    for i, group in enumerate(groups):
        for child in groups[i + 1:]:
            if rng.random() < 0.25:
                children[group].append(child)
    host_vars = {entry: _connection_vars(rng) for entry in hosts + extra if rng.random() < 0.6}
    group_vars = {g: _connection_vars(rng) for g in groups + ["all"] if rng.random() < 0.4}
    for g in group_vars:
        if g != "all" and rng.random() < 0.2:
            group_vars[g]["ansible_group_priority"] = rng.randint(1, 3)
    ungrouped = [e for e in hosts + extra if not any(e in m for m in members.values())]
    if rng.random() < 0.5:
        path = directory / "hosts.yml"
        path.write_text(yaml.safe_dump(_yaml_doc(groups, members, children, ungrouped, host_vars, group_vars)))
    else:
        path = directory / "hosts.ini"
        path.write_text(_ini_doc(groups, members, children, ungrouped, host_vars, group_vars))
    if rng.random() < 0.3:
        (directory / "group_vars").mkdir()
        for group in rng.sample(groups + ["all"], k=2 if len(groups) > 1 else 1):
            (directory / "group_vars" / f"{group}.yml").write_text(yaml.safe_dump(_connection_vars(rng)))
    if rng.random() < 0.3:
        (directory / "host_vars").mkdir()
        for name in rng.sample(hosts + LOCALHOSTS, k=2):
            (directory / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump(_connection_vars(rng)))
    unordered = {g for g in groups if any(children[c] for c in children[g])}
    if any(children.values()):
        unordered.add("all")
    return [str(path)], patterns_for(rng, groups, hosts + _expanded(extra)), unordered


def _connection_vars(rng: random.Random) -> dict[str, Any]:
    choices = {
        "ansible_host": lambda: rng.choice(["10.0.0.1", "new.example.com"]),
        "ansible_ssh_host": lambda: rng.choice(["10.0.0.2", "old.example.com"]),
        "ansible_port": lambda: rng.choice([22, 2200]),
        "ansible_ssh_port": lambda: rng.choice([2022, 2222]),
        "ansible_user": lambda: rng.choice(["deploy", "new"]),
        "ansible_ssh_user": lambda: rng.choice(["old", "root"]),
        "ansible_connection": lambda: rng.choice(["ssh", "local"]),
        "color": lambda: rng.choice(["red", "blue", 3]),
        "size": lambda: rng.randint(1, 9),
        "cfg": lambda: rng.choice([{"a": 1}, {"b": {"c": 2}}, ["x", "y"]]),
        "ansible_become": lambda: rng.choice([True, False]),
    }
    keys = rng.sample(sorted(choices), k=rng.randint(1, 4))
    return {key: choices[key]() for key in keys}


def _expanded(extra: list[str]) -> list[str]:
    names = {"web[1:3]": ["web1", "web2", "web3"], "db-[a:c]": ["db-a", "db-b", "db-c"],
             "[1:2].example.com": ["1.example.com", "2.example.com"], "n[01:10:3]": ["n01", "n04", "n07", "n10"],
             "p1:2222": ["p1"], "[2001:db8::1]:2200": ["2001:db8::1"], "h0:2201": ["h0"]}
    return [n for e in extra for n in names.get(e, [e])]


def _yaml_doc(groups: list[str], members: dict[str, list[str]], children: dict[str, list[str]],
              ungrouped: list[str], host_vars: dict[str, dict[str, Any]],
              group_vars: dict[str, dict[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for group in ["all", *groups]:
        body: dict[str, Any] = {}
        entries = ungrouped if group == "all" else members[group]
        if entries:
            body["hosts"] = {e: host_vars.pop(e, None) for e in entries}
        if group != "all" and children[group]:
            body["children"] = {c: None for c in children[group]}
        if group in group_vars:
            body["vars"] = group_vars[group]
        doc[group] = body or None
    return doc


def _ini_doc(groups: list[str], members: dict[str, list[str]], children: dict[str, list[str]],
             ungrouped: list[str], host_vars: dict[str, dict[str, Any]],
             group_vars: dict[str, dict[str, Any]]) -> str:
    def host_line(entry: str) -> str:
        values = host_vars.pop(entry, {})
        return " ".join([entry, *(f"{k}={_ini(v)}" for k, v in values.items())])

    lines = [host_line(e) for e in ungrouped]
    for group in groups:
        lines += [f"[{group}]", *(host_line(e) for e in members[group])]
        if children[group]:
            lines += [f"[{group}:children]", *children[group]]
    for group, values in group_vars.items():
        lines += [f"[{group}:vars]", *(f"{k}={_ini(v)}" for k, v in values.items())]
    return "\n".join(lines) + "\n"


def _ini(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else str(value)


def patterns_for(rng: random.Random, groups: list[str], hosts: list[str]) -> list[str]:
    """Takes an inventory's group and host names, returns patterns that exercise every step."""
    names = groups + hosts
    pick = lambda: rng.choice(names)  # noqa: E731
    patterns = ["all", "*", "ungrouped", *LOCALHOSTS, "localhost[0]", "localhost:!127.0.0.1",
                f"{pick()}:localhost", "all:!localhost", "&localhost", "localhost:&all"]
    for _ in range(16):
        kind = rng.randrange(9)
        if kind == 0:
            patterns.append(pick())
        elif kind == 1:
            patterns.append(f"{pick()}:{pick()}")
        elif kind == 2:
            patterns.append(f"{pick()}:&{pick()}")
        elif kind == 3:
            patterns.append(f"{pick()},!{pick()}")
        elif kind == 4:
            a, b = sorted(rng.sample(range(4), 2))
            patterns.append(f"{rng.choice(groups + ['all'])}[{a}{rng.choice(':-')}{b}]")
        elif kind == 5:
            patterns.append(f"{rng.choice(groups + ['all'])}[{rng.randint(-2, 3)}]")
        elif kind == 6:
            patterns.append(rng.choice(["h*", "g*", "*1", "h[0-2]", "g[0-1]", "web[2-3]", "?1", "*.example.com",
                                        "h[!0]", "local*", "web*[1:]"]))
        elif kind == 7:
            patterns.append(rng.choice(["~h[0-2]", "~g", "~.*1$", "~(web|db)", "~local"]))
        else:
            patterns.append(f"{pick()}:{pick()}:&{pick()}:!{pick()}")
    return patterns


def fixed_cases(directory: Path) -> list[Case]:
    """The repository's inventories and the pattern tests' inventories, with patterns over their names."""
    rng = random.Random(11)
    cases = []
    (directory / "fleet.yml").write_text(FLEET_TEXT)
    (directory / "letters.ini").write_text(LETTERS_TEXT)
    for path in [REPO / "inventory" / "example.yml", REPO / "inventory" / "example.ini",
                 REPO / "inventory" / "hosts.yml", directory / "fleet.yml", directory / "letters.ini"]:
        inventory = load_inventory([path])
        groups = [g for g in inventory.groups if g not in ("all", "ungrouped")]
        unordered = {"all", "usa"} if path.name == "fleet.yml" else set() if path.name == "letters.ini" else {"all"}
        cases.append(([str(path)], patterns_for(rng, groups, [h.name for h in inventory.hosts]), unordered))
    return cases


# ------------------------------------------------------------------------------- the comparison

def ours(sources: list[str], patterns: list[str]) -> dict[str, Any]:
    """This package's answers, in the oracle's shape."""
    try:
        inventory = load_inventory(sources)
    except InventoryError as exc:
        return {"error": str(exc)}
    selected: dict[str, list[str] | None] = {}
    described = {h.name: _describe(h.name, h.vars) for h in inventory.hosts}
    for pattern in patterns:
        try:
            hosts = select(inventory, pattern)
        except InventoryError:
            selected[pattern] = None
            continue
        selected[pattern] = [h.name for h in hosts]
        described.update((h.name, _describe(h.name, h.vars)) for h in hosts if h.implicit)
    return {"patterns": selected, "hosts": described}


def _describe(name: str, variables: Any) -> dict[str, Any]:
    try:
        target = make_target(name, variables, FleetOptions())
        connect: dict[str, Any] = {"hostname": target.hostname, "port": target.port if target.port_explicit else None,
                                   "user": target.user, "connection": target.connection}
    except (UsageError, InventoryError) as exc:
        connect = {"error": str(exc)}
    return {"vars": json.loads(json.dumps(dict(variables), default=str)), "connect": connect}


def _order_is_chance(pattern: str, unordered: set[str]) -> bool:
    """Whether a subscript in the pattern counts hosts that ansible-core orders by chance."""
    for match in _SUBSCRIPTED.finditer(pattern):
        base = match.group(1)
        if base in unordered or (unordered and any(c in base for c in "*?[~")):
            return True
    return False


def disagreements(case: Case, mine: dict[str, Any], theirs: dict[str, Any], counts: dict[str, int]) -> list[str]:
    """Compares one case's answers; returns what differs, one line each, and counts the checks."""
    where = " ".join(f"{Path(s).parent.name}/{Path(s).name}" for s in case[0])
    counts["checks"] += 1
    if ("error" in mine) != ("error" in theirs):
        return [f"{where}: loads here: {'error' not in mine}, in ansible-core: {'error' not in theirs} "
                f"({mine.get('error') or theirs.get('error')})"]
    if "error" in mine:
        return []
    found = []
    for pattern in case[1]:
        if _order_is_chance(pattern, case[2]):
            counts["indeterminate"] += 1
            continue
        counts["checks"] += 1
        a, b = set(mine["patterns"][pattern] or ()), set(theirs["patterns"][pattern] or ())
        if a != b:
            found.append(f"{where}: -l {pattern!r}: here {sorted(a)}, ansible-core {sorted(b)}")
    for name, theirs_host in theirs["hosts"].items():
        counts["checks"] += 1
        mine_host = mine["hosts"].get(name)
        if mine_host is None:
            found.append(f"{where}: host {name!r} only in ansible-core")
            continue
        if mine_host["vars"] != theirs_host["vars"]:
            found.append(f"{where}: host {name!r} vars: here {mine_host['vars']}, ansible-core {theirs_host['vars']}")
        connect = dict(theirs_host["connect"])
        if connect["port"] is not None:
            connect["port"] = int(connect["port"])
        if mine_host["connect"] != connect:
            found.append(f"{where}: host {name!r} connects: here {mine_host['connect']}, ansible-core {connect}")
    return found


def test_host_selection_and_connection_variables_agree_with_ansible_core(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    cases = fixed_cases(tmp_path)
    for index in range(GENERATED):
        directory = tmp_path / f"inv{index:03d}"
        directory.mkdir()
        cases.append(generated_inventory(rng, directory))
    request = json.dumps([{"sources": s, "patterns": p} for s, p, _ in cases])
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ansible"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_CONFIG": str(tmp_path / "none.cfg"), "ANSIBLE_INVENTORY_ENABLED": "yaml,ini",
           "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_HOST_PATTERN_MISMATCH": "ignore",
           "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_LOCALHOST_WARNING": "False", "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, str(ORACLE)], input=request, capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout)
    counts = {"checks": 0, "indeterminate": 0}
    found: list[str] = []
    for case, theirs in zip(cases, answers, strict=True):
        found += disagreements(case, ours(case[0], case[1]), theirs, counts)
    print(f"ansible-core differential: {counts['checks'] - len(found)} of {counts['checks']} checks agree, "
          f"{counts['indeterminate']} subscripts over an order ansible-core leaves to chance not compared")
    assert not found, f"{len(found)} of {counts['checks']} checks differ:\n" + "\n".join(found[:40])
    assert counts["checks"] > 5000


def test_the_generated_inventories_load_here(tmp_path: Path) -> None:
    """The generator itself is sound: what it writes is an inventory this package reads."""
    rng = random.Random(5)
    for index in range(20):
        directory = tmp_path / f"inv{index}"
        directory.mkdir()
        sources, _, _ = generated_inventory(rng, directory)
        assert isinstance(load_inventory(sources), Inventory)
