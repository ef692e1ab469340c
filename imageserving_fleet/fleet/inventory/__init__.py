"""Ansible inventories: the model, its loaders and the `--limit` selector, as separate pieces.

    model.py      Host, Inventory (the data; implicit localhost)      ← ansible inventory/data.py
    builder.py    the mutable inventory the loaders fill; variable precedence; freezing
    addresses.py  `www[01:50].example.com:2222` → names and a port     ← ansible parsing/utils/addresses.py
    ini.py        the INI format                                      ← ansible plugins/inventory/ini.py
    yaml.py       the YAML format                                     ← ansible plugins/inventory/yaml.py
    vars.py       group_vars/ and host_vars/                          ← ansible plugins/vars/host_group_vars.py
    files.py      which files are inventory, reading them bounded
    load.py       paths or text → Inventory (the entry points)
    patterns.py   select(inventory, pattern): split → order → evaluate ← ansible inventory/manager.py

Everything but files.py and vars.py is pure: data in, data out, InventoryError (with file and line)
for anything wrong.
"""

from .addresses import expand_host_pattern
from .load import default_inventory, inventory_from_text, load_inventory
from .model import LOCALHOST_NAMES, Host, Inventory
from .patterns import select

__all__ = ["LOCALHOST_NAMES", "Host", "Inventory", "default_inventory", "expand_host_pattern",
           "inventory_from_text", "load_inventory", "select"]
