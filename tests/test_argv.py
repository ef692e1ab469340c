"""hoist(): global options move in front of the command word, everything else stays in order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imageserving_fleet.argv import hoist

# The agent's globals, and the fleet's (with short options that take a glued value).
AGENT_VALUE = ("--home", "--config")
AGENT_FLAGS = ("--json",)
FLEET_VALUE = ("-i", "--inventory", "-l", "--limit", "-f", "--forks", "--timeout", "-u", "--user")
FLEET_FLAGS = ("--json", "-q", "--quiet", "-b", "--become")


@pytest.mark.parametrize(
    ("argv", "hoisted"),
    [
        ([], []),
        (["status"], ["status"]),
        # already in front: unchanged
        (["--home", "H", "status"], ["--home", "H", "status"]),
        (["--home", "H", "--json", "status"], ["--home", "H", "--json", "status"]),
        # after the command word: moved in front, in their original order
        (["status", "--json", "--home", "H"], ["--json", "--home", "H", "status"]),
        (["status", "--home", "H", "--json"], ["--home", "H", "--json", "status"]),
        (["restart", "is", "--config", "C"], ["--config", "C", "restart", "is"]),
        # --opt=value is one word
        (["status", "--home=H"], ["--home=H", "status"]),
        (["status", "--home=a=b"], ["--home=a=b", "status"]),
        (["status", "--home="], ["--home=", "status"]),
        # the value is taken whatever it looks like
        (["status", "--home", "status"], ["--home", "status", "status"]),
        (["status", "--home", "--json"], ["--home", "--json", "status"]),
        # a value option at the very end, without its value: left for Click to complain about
        (["status", "--home"], ["--home", "status"]),
        # command options and arguments keep their order
        (["logs", "is", "-n", "50", "-f", "--home", "H"], ["--home", "H", "logs", "is", "-n", "50", "-f"]),
        (["config", "check", "x.yaml", "--json"], ["--json", "config", "check", "x.yaml"]),
        # not a global: an unknown long option is left where it is
        (["status", "--homer", "H"], ["status", "--homer", "H"]),
        (["status", "--jsonx"], ["status", "--jsonx"]),
        # `--` stops hoisting; it and everything after it stay in place
        (["status", "--", "--json"], ["status", "--", "--json"]),
        (["--json", "logs", "--", "--home", "H"], ["--json", "logs", "--", "--home", "H"]),
        (["logs", "--json", "--", "--home", "H"], ["--json", "logs", "--", "--home", "H"]),
        (["--"], ["--"]),
    ],
)
def test_hoist_agent(argv: list[str], hoisted: list[str]) -> None:
    assert hoist(argv, AGENT_VALUE, AGENT_FLAGS) == hoisted


@pytest.mark.parametrize(
    ("argv", "hoisted"),
    [
        (["status", "-i", "inv.yml"], ["-i", "inv.yml", "status"]),
        (["status", "-iinv.yml"], ["-iinv.yml", "status"]),  # short option glued to its value
        (["status", "-i=inv.yml"], ["-i=inv.yml", "status"]),
        (["status", "-iA", "-iB"], ["-iA", "-iB", "status"]),  # repeatable: order kept
        (["status", "-l", "is0*", "-f20"], ["-l", "is0*", "-f20", "status"]),
        (["restart", "is", "--serial", "2", "-q"], ["-q", "restart", "is", "--serial", "2"]),
        (["restart", "--limit=web", "is", "-b"], ["--limit=web", "-b", "restart", "is"]),
        # a short option that is not global, even glued, stays
        (["report", "-oout.html", "-i", "x"], ["-i", "x", "report", "-oout.html"]),
        (["report", "-x"], ["report", "-x"]),
        # `-` alone (stdin) and a lone dash-letter that is not global stay
        (["report", "-"], ["report", "-"]),
        # a long option is never read as a glued short one
        (["status", "--inventoryX"], ["status", "--inventoryX"]),
        (["status", "--", "-iX"], ["status", "--", "-iX"]),
    ],
)
def test_hoist_fleet_short_options(argv: list[str], hoisted: list[str]) -> None:
    assert hoist(argv, FLEET_VALUE, FLEET_FLAGS) == hoisted


def test_hoist_does_not_modify_its_argument() -> None:
    argv = ["status", "--json"]
    hoist(argv, AGENT_VALUE, AGENT_FLAGS)
    assert argv == ["status", "--json"]


WORDS = st.sampled_from(
    [
        "status",
        "start",
        "is",
        "ps",
        "x",
        "-n",
        "5",
        "--json",
        "--home",
        "H",
        "--home=Z",
        "--config",
        "C",
        "--other",
        "--",
    ]
)


@given(st.lists(WORDS, max_size=12))
def test_hoist_is_a_permutation(argv: list[str]) -> None:
    out = hoist(argv, AGENT_VALUE, AGENT_FLAGS)
    assert sorted(out) == sorted(argv)


@given(st.lists(WORDS, max_size=12))
def test_hoist_is_idempotent(argv: list[str]) -> None:
    once = hoist(argv, AGENT_VALUE, AGENT_FLAGS)
    assert hoist(once, AGENT_VALUE, AGENT_FLAGS) == once


@given(st.lists(WORDS.filter(lambda w: w != "--"), max_size=12))
def test_hoist_keeps_non_global_words_in_order(argv: list[str]) -> None:
    out = hoist(argv, AGENT_VALUE, AGENT_FLAGS)
    # What is left after the global options is the original argv without them, in order.
    globals_taken: list[int] = []
    i = 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        if name in AGENT_FLAGS:
            globals_taken.append(i)
        elif name in AGENT_VALUE:
            globals_taken.append(i)
            if "=" not in argv[i] and i + 1 < len(argv):
                globals_taken.append(i + 1)
                i += 1
        i += 1
    rest = [w for j, w in enumerate(argv) if j not in globals_taken]
    assert out[len(globals_taken) :] == rest
    assert out[: len(globals_taken)] == [argv[j] for j in globals_taken]
