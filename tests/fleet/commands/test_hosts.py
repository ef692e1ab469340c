"""`hosts` (commands/hosts.py): the rows of the selected hosts; contacts nothing, asks no password."""

from __future__ import annotations

import json
from pathlib import Path

from imageserving_fleet.fleet.commands.hosts import hosts, hosts_document
from imageserving_fleet.fleet.context import Command

from .fakehosts import FakeHosts


def test_rows_of_the_selected_hosts_in_inventory_order(tmp_path: Path) -> None:
    fake = FakeHosts(["web2", "web1", "db"], host_vars={
        "web1": {"ansible_user": "deploy", "ansible_port": 2222, "imageserving_home": "/srv/is"},
        "db": {"ansible_become": True, "imageserving_command": "/opt/is/bin/imageserving",
               "imageserving_worker": "east"}})
    ctx = fake.context(tmp_path, Command.HOSTS, limit="web*:db", ask_become_pass=True)  # -K: no prompt here
    rows = hosts(ctx)
    assert [r.host for r in rows] == ["web2", "web1", "db"]
    web1, db = rows[1], rows[2]
    assert (web1.address, web1.home, web1.become) == ("deploy@127.0.0.1:2222", "/srv/is", False)
    assert (db.become, db.agent, db.worker) == (True, "/opt/is/bin/imageserving", "east")
    assert rows[0].agent == "~/.imageserving/venv/bin/imageserving (else imageserving on PATH)"
    doc = hosts_document(rows)
    assert list(doc) == ["schema", "command", "hosts"] and doc["command"] == "hosts"
    assert list(doc["hosts"][0]) == ["host", "address", "connection", "become", "become_user", "home", "config",
                                     "worker", "agent", "settings"]
    assert db.settings["become"]["value"] is True
    assert db.settings["become"]["source"].startswith("inventory ansible_become (host db, ")
    assert json.loads(json.dumps(doc)) == doc
