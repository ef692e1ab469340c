"""Ask ansible-core how it would connect to each host of the Ansible project in the current directory.

Run as a child process, in the project directory, with the environment under test (ansible's
configuration is read once per process, at import):

    python ansible_project_oracle.py > answer.json

The answer: {"config_file", "forks", "timeout", "host_key_checking", "hosts": {name: {"address",
"port", "user", "key", "become", "become_user", "become_method"}}} for every host of `all`, as
ansible-core's own ssh connection plugin and sudo become plugin resolve their options from the
host's variables, ANSIBLE_* and ansible.cfg, with the current directory as the playbook directory
(`--playbook-dir .`, as for a playbook run from the project directory).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> None:
    from ansible import constants as C
    from ansible import context
    from ansible.inventory.manager import InventoryManager
    from ansible.module_utils.parsing.convert_bool import boolean
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook.play_context import PlayContext
    from ansible.plugins.loader import become_loader, connection_loader, init_plugin_loader
    from ansible.utils.context_objects import CLIArgs
    from ansible.vars.manager import VariableManager

    cwd = os.getcwd()
    context.CLIARGS = CLIArgs({"basedir": cwd})  # --playbook-dir .
    init_plugin_loader()
    loader = DataLoader()
    loader.set_basedir(cwd)
    inventory = InventoryManager(loader=loader, sources=C.DEFAULT_HOST_LIST)
    manager = VariableManager(loader=loader, inventory=inventory)
    hosts: dict[str, dict[str, Any]] = {}
    for host in inventory.get_hosts("all"):
        variables = manager.get_vars(host=host, include_hostvars=False)
        conn = connection_loader.get("ssh", PlayContext(), "/dev/null")
        conn.set_options(var_options=variables)
        sudo = become_loader.get("sudo")
        sudo.set_options(var_options=variables)
        become = variables.get("ansible_become", C.DEFAULT_BECOME)
        hosts[host.name] = {
            "address": conn.get_option("host"),
            "port": conn.get_option("port"),
            "user": conn.get_option("remote_user"),
            "key": conn.get_option("private_key_file"),
            "become": boolean(become, strict=False),
            "become_user": sudo.get_option("become_user"),
            "become_method": variables.get("ansible_become_method", C.DEFAULT_BECOME_METHOD),
            "host_key_checking": boolean(conn.get_option("host_key_checking"), strict=False),
        }
    answer = {"config_file": C.config.data.get_setting("CONFIG_FILE").value if False else C.CONFIG_FILE,
              "forks": C.DEFAULT_FORKS, "timeout": C.DEFAULT_TIMEOUT, "hosts": hosts}
    json.dump(answer, sys.stdout, default=str)


if __name__ == "__main__":
    main()
