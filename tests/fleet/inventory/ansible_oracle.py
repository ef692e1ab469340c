"""Ask ansible-core what it selects and how it would connect: the other side of the differential test.

Run as a child process (ansible's configuration and display are process globals):

    python ansible_oracle.py < cases.json > answers.json

cases.json: [{"sources": [path, ...], "patterns": [pattern, ...]}, ...]. For each case the answer
is {"error": message} when ansible-core refuses the inventory, else
{"patterns": {pattern: [host, ...] | null}, "hosts": {host: {"vars": {...}, "connect": {...}}}}
where the hosts of a pattern are `ansible PATTERN`'s (null: ansible-core raised an error), and
"hosts" covers every inventory host and any implicit localhost a pattern selected.
"""

from __future__ import annotations

import json
import sys
from typing import Any

# ansible-inventory's INTERNAL_VARS and the other magic variables get_vars() adds without a play.
MAGIC = frozenset((
    "ansible_check_mode", "ansible_config_file", "ansible_diff_mode", "ansible_facts", "ansible_forks",
    "ansible_inventory_sources", "ansible_limit", "ansible_playbook_python", "ansible_run_tags",
    "ansible_search_path", "ansible_skip_tags", "ansible_verbosity", "ansible_version", "group_names",
    "groups", "inventory_dir", "inventory_file", "inventory_hostname", "inventory_hostname_short", "omit",
    "playbook_dir", "ansible_play_batch", "ansible_play_hosts", "ansible_play_hosts_all", "play_hosts",
    "ansible_dependent_role_names", "ansible_role_names", "role_names", "environment", "vars", "hostvars",
))


def _last_set(variables: dict[str, Any], names: tuple[str, ...]) -> Any:
    """ansible-core's config manager `_loop_entries`: of an option's variables, the last one set wins."""
    value = None
    for name in names:
        if variables.get(name) is not None:
            value = variables[name]
    return value


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def answer(case: dict[str, Any]) -> dict[str, Any]:
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    try:
        inventory = InventoryManager(loader=loader, sources=case["sources"])
    except AnsibleError as exc:
        return {"error": str(exc).splitlines()[0]}
    manager = VariableManager(loader=loader, inventory=inventory)
    selected: dict[str, list[str] | None] = {}
    hosts = {h.name: h for h in inventory.get_hosts("all")}
    localhost = inventory._inventory.localhost  # the inventory's own, or None
    for pattern in case["patterns"]:
        # as a fresh `ansible PATTERN` would: get_host() keeps an implicit localhost once made
        inventory._inventory.localhost = localhost
        inventory.clear_caches()
        try:
            found = inventory.get_hosts(pattern)
        except (AnsibleError, IndexError):  # IndexError: `h:&::1` leaves an empty `&` term, a crash in ansible
            selected[pattern] = None
            continue
        selected[pattern] = [h.name for h in found]
        hosts.update((h.name, h) for h in found)
    described = {}
    for name, host in hosts.items():
        variables = manager.get_vars(host=host, include_hostvars=False)
        described[name] = {
            "vars": {k: _plain(v) for k, v in variables.items() if k not in MAGIC},
            "implicit": bool(host.implicit),
            "connect": _plain({
                "hostname": _last_set(variables, ("inventory_hostname", "ansible_host", "ansible_ssh_host")),
                "port": _last_set(variables, ("ansible_port", "ansible_ssh_port")),
                "user": _last_set(variables, ("ansible_user", "ansible_ssh_user")),
                "connection": variables.get("ansible_connection") or "ssh",
            }),
        }
    return {"patterns": selected, "hosts": described}


def main() -> None:
    cases = json.load(sys.stdin)
    json.dump([answer(case) for case in cases], sys.stdout)


if __name__ == "__main__":
    main()
