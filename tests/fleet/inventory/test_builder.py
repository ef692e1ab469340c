"""builder.py: variable precedence across groups, and the implicit localhost it prepares."""

from __future__ import annotations

from imageserving_fleet.fleet.inventory import inventory_from_text


def test_same_depth_groups_merge_alphabetically_unless_a_priority_says_otherwise() -> None:
    text = """
zeta: {vars: {color: zeta}, hosts: {h1: }}
alpha: {vars: {color: alpha}, hosts: {h1: }}
"""
    assert inventory_from_text(text, source="x.yml").host("h1").vars["color"] == "zeta"
    prioritized = text.replace("{color: alpha}", "{color: alpha, ansible_group_priority: 10}")
    inv = inventory_from_text(prioritized, source="x.yml")
    assert inv.host("h1").vars["color"] == "alpha"
    assert inv.host("h1").groups == ("all", "zeta", "alpha")
