"""The one place a string that came from a host is made safe for a terminal or a text report.

MERGE (issue 20): the `ops` branch owns the escaping of host output (item 6: control characters,
C1, bidi overrides shown escaped as journalctl does) in `imageserving_fleet/untrusted.py`, as
`escape(text, *, tabs=True)`. This stand-in has the same signature and is the identity, so that
the `live` branch's call sites (grouped logs, notification text) exist already: once ops' module
is on main, the body below becomes `from ..untrusted import escape as render_untrusted`.
"""

from __future__ import annotations


def render_untrusted(text: str, *, tabs: bool = True) -> str:
    """Takes text a host sent; returns it as it may be shown on a terminal (stand-in: unchanged)."""
    return text
