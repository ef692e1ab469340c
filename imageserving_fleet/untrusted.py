"""Show text that came from a host without letting it drive the terminal: one function, `escape`.

A host is not trusted to write to the operator's terminal. Its stderr, its log lines (access logs
full of URLs and User-Agents from anyone), its status messages and what its login shell prints can
carry `ESC ] 0 ; title BEL` (retitle the window), `ESC [ 2 J` (clear it), OSC 52 (write the
clipboard), C1 controls (`U+009B` is a CSI on some terminals), bidi overrides that make text read
in another order than it is, NUL, and lone surrogates no UTF-8 writer can print. Every string from
a host goes through `escape` at the rendering edge: tables, `-v` lines, log lines, Markdown and CSV
reports, exporter change lines. JSON output keeps the text as it is (the encoder escapes it), the
HTML report escapes for HTML, and `logs --raw` prints the bytes as they came.

The rule, as journalctl's: a character Python's `str.isprintable()` refuses (Unicode categories
Cc, Cf, Cs, Co, Cn, Zl, Zp and every Zs but the ASCII space) is shown as the escape Python's
`repr()` would write: `\\x1b`, `\\x00`, `\\x9b`, `\\u202e`, `\\udc80`, `\\U000e0001`. Everything
else, backslashes included, is shown as it is (so the display is readable, not reversible: the
exact text is in --json or --raw). A tab is kept (stack traces and key=value logs indent with it,
and it cannot move the cursor backwards); with `tabs=False` (a table cell) it is escaped too.
Newlines are escaped: a host must not start a line that looks like another host's. Stdlib only.
"""

from __future__ import annotations

import logging
import re

__all__ = ["EscapingFormatter", "escape", "escape_bytes", "escape_lines"]

_TAB = "\t"


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str, *, tabs: bool = True) -> str:
    """Takes text from a host; returns it with every non-printable character shown as an escape.

    `tabs=False` escapes tabs too (a table cell, a one-line reason). Newlines are always escaped:
    split multi-line text first (`escape_lines`).
    """
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(ch if ch.isprintable() or (tabs and ch == _TAB) else _escape_char(ch) for ch in text)


_LINE_BREAK = re.compile(r"\r\n|\n")


def escape_lines(text: str, *, tabs: bool = True) -> list[str]:
    """Takes multi-line text from a host; returns its lines, each escaped (a lone CR is shown, `\\x0d`).

    A trailing line break does not make an empty last line.
    """
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return [escape(line, tabs=tabs) for line in lines]


def escape_bytes(data: bytes, *, tabs: bool = True) -> str:
    """Takes bytes from a host; returns them as escaped text (bytes that are not UTF-8 shown as `\\xNN`)."""
    return escape(data.decode("utf-8", errors="backslashreplace"), tabs=tabs)


class EscapingFormatter(logging.Formatter):
    """A logging formatter whose every line is escaped: `-v` shows what a host's shell printed."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record))
