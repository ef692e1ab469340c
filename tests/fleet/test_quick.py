"""The light path of a plain `status`/`ping` (fleet/quick.py): which argv it takes, and how it reads them.

Anything it does not take goes to the full CLI untouched (tests/fleet/test_persist.py shows the
two print the same table for the same run).
"""

from __future__ import annotations

from typing import Any

import pytest

from imageserving_fleet.fleet.quick import parse


@pytest.mark.parametrize(("argv", "expected"), [
    (["status"], ("status", None, {})),
    (["status", "is"], ("status", "is", {})),
    (["ping"], ("ping", None, {})),
    (["-i", "a.yml", "-i", "b.yml", "--json", "-f", "7", "--timeout", "2.5", "--persist", "0", "status"],
     ("status", None, {"inventory": ("a.yml", "b.yml"), "as_json": True, "forks": 7, "timeout": 2.5, "persist": 0.0})),
    (["-l", "web*", "-q", "--host-key-policy", "accept-new", "ping"],
     ("ping", None, {"limit": "web*", "quiet": True, "host_key_policy": "accept-new"})),
])
def test_the_plain_forms_it_takes(argv: list[str], expected: tuple[str, str | None, dict[str, Any]]) -> None:
    assert parse(argv) == expected


@pytest.mark.parametrize("argv", [
    [],
    ["hosts"],                          # another command
    ["status", "--watch"],              # a command option
    ["status", "is", "ps"],             # two ids: the CLI says what is wrong
    ["ping", "is"],
    ["-v", "status"],                   # debug logging is set up by the CLI
    ["-K", "status"],                   # so is the password prompt
    ["-h"], ["status", "-h"], ["--version"],
    ["--forks=5", "status"],            # the = form
    ["-f", "five", "status"],           # a value it cannot read: the CLI's message
    ["-f", "1", "-f", "2", "status"],   # given twice
    ["status", "-i"],                   # an option without its value
])
def test_anything_else_goes_to_the_full_cli(argv: list[str]) -> None:
    assert parse(argv) is None
