"""The one place a string that came from a host is made safe for a terminal or a text report.

MERGE (issue 20): the `ops` branch owns the escaping of host output (item 6: control characters,
C1, bidi overrides shown escaped as journalctl does). This stand-in is the identity so that the
`live` branch's call sites (grouped logs, exporter change lines, notification text) exist already:
when ops' function lands on main, this body becomes an import of it, one line.
"""

from __future__ import annotations


def render_untrusted(text: str) -> str:
    """Takes text a host sent; returns it as it may be shown on a terminal (stand-in: unchanged)."""
    return text
