"""Shared Hypothesis strategies for the fuzz suite: JSON values, hostile strings, YAML texts.

Each fuzz test keeps a modest max_examples (FAST) so the whole suite stays well under a minute in
CI; the `slow`-marked variants run the same properties with DEEP examples.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEEP = settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Strings an attacker or a careless operator would try: shell metacharacters, NULs, control and
# bidi characters, surrogates-as-text, YAML/INI syntax, path tricks, enormous numbers.
HOSTILE = st.sampled_from([
    "", " ", "\x00", "\n", "\r\n", "\t", "\u202e", "\ufeff", "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"),
    "$(touch /tmp/x)", "`id`", "a;reboot", "is;reboot", "&&", "|", ">", "../../etc/passwd", "~", "~root",
    "${HOME}", "${X:-${Y}}", "${", "%", "100%", "-1", "0", "1e400", "nan", "inf", "-inf", "9" * 30,
    "[", "]", "{", "}", ":", "::", "- -", "!!python/object:os.system", "*a", "&a", "<<", "? x", "'", '"',
    "#", "\\", "0x1F", "0o17", "1_000", "yes", "no", "on", "off", "null", "~/x", "/dev/zero", "/proc/self/mem",
    "\u00b2", "\u0661\u0662", "\uff11", "9" * 5000,   # isdigit() traps: '²' is a digit int() refuses
])
TEXT = st.one_of(HOSTILE, st.text(max_size=40))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), TEXT)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON value, small."""
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), TEXT),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
        max_leaves=max_leaves,
    )


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth
