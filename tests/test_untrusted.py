"""Host output is untrusted: the one escaping function, with a table of hostile strings."""

from __future__ import annotations

import pytest

from imageserving_fleet.untrusted import EscapingFormatter, escape, escape_bytes, escape_lines

HOSTILE = [
    # (what it is, text from a host, what the operator sees)
    ("plain text stays", "ps RUNNING 2h 05m", "ps RUNNING 2h 05m"),
    ("non-ASCII letters stay", "Größe: 12 MiB, 東京, ↻3", "Größe: 12 MiB, 東京, ↻3"),
    ("backslashes stay", r"C:\temp\x1b", r"C:\temp\x1b"),
    ("tab kept by default", "a\tb", "a\tb"),
    ("OSC title with BEL", "boom \x1b]0;PWNED\x07 x", "boom \\x1b]0;PWNED\\x07 x"),
    ("OSC 52 clipboard with ST", "\x1b]52;c;cm0gLXJmIC8=\x1b\\", "\\x1b]52;c;cm0gLXJmIC8=\\x1b\\"),
    ("CSI clear screen", "\x1b[2Jcleared", "\\x1b[2Jcleared"),
    ("CSI colour", "\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("C1 CSI", "\x9b2J", "\\x9b2J"),
    ("C1 OSC and ST", "\x9d0;t\x9c", "\\x9d0;t\\x9c"),
    ("NUL", "a\x00b", "a\\x00b"),
    ("DEL", "a\x7fb", "a\\x7fb"),
    ("backspace over a word", "ok\x08\x08XX", "ok\\x08\\x08XX"),
    ("carriage return overwrites a line", "failed\rok    ", "failed\\x0dok    "),
    ("newline forges another host's line", "x\nhost-002 | ok", "x\\x0ahost-002 | ok"),
    ("bidi override RLO", "evil\u202etxt.exe", "evil\\u202etxt.exe"),
    ("bidi isolates", "\u2066a\u2067b\u2068c\u2069", "\\u2066a\\u2067b\\u2068c\\u2069"),
    ("bidi embeddings", "\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
    ("zero width space", "ad\u200bmin", "ad\\u200bmin"),
    ("line separator", "a\u2028b", "a\\u2028b"),
    ("lone surrogate", "bad \udc80 byte", "bad \\udc80 byte"),
    ("tag character (astral Cf)", "x\U000e0041", "x\\U000e0041"),
    ("no-break space", "a\u00a0b", "a\\xa0b"),
]


@pytest.mark.parametrize(("what", "text", "shown"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_escape_table(what: str, text: str, shown: str) -> None:
    assert escape(text) == shown
    assert escape(shown) == shown  # what is shown is printable: escaping it again changes nothing
    assert "\x1b" not in shown and "\x9b" not in shown


@pytest.mark.parametrize(("text", "shown"), [("a\tb", "a\\x09b"), ("\t", "\\x09")])
def test_tabs_escaped_in_table_cells(text: str, shown: str) -> None:
    assert escape(text, tabs=False) == shown


@pytest.mark.parametrize(("text", "lines"), [
    ("", []),
    ("one", ["one"]),
    ("one\n", ["one"]),
    ("one\r\ntwo\n", ["one", "two"]),
    ("a\x1b[2J\nb\rc", ["a\\x1b[2J", "b\\x0dc"]),
    ("\n\n", ["", ""]),
])
def test_escape_lines(text: str, lines: list[str]) -> None:
    assert escape_lines(text) == lines


@pytest.mark.parametrize(("data", "shown"), [
    (b"plain", "plain"),
    (b"\xff\xfe not utf-8", "\\xff\\xfe not utf-8"),
    (b"boom \x1b]0;PWNED\x07", "boom \\x1b]0;PWNED\\x07"),
    ("caf\u00e9 \u202e".encode(), "caf\u00e9 \\u202e"),
    (b"\xc2\x9b2J", "\\x9b2J"),  # a C1 CSI, encoded in UTF-8
])
def test_escape_bytes(data: bytes, shown: str) -> None:
    assert escape_bytes(data) == shown


def test_every_code_point_comes_out_printable() -> None:
    """Whatever a host sends, what is shown is printable (no code point slips through)."""
    everything = "".join(chr(c) for c in range(0, 0x110000, 7)) + "".join(chr(c) for c in range(0x300))
    shown = escape(everything, tabs=False)
    assert shown.isprintable()


def test_debug_lines_are_escaped() -> None:
    import logging

    record = logging.LogRecord("imageserving_fleet", logging.DEBUG, __file__, 1, "%s: said %s", ("h1", "\x1b]0;x\x07\nforged"),
                               None)
    assert EscapingFormatter("debug: %(message)s").format(record) == "debug: h1: said \\x1b]0;x\\x07\\x0aforged"


# ------------------------------------------------------------ at the rendering edges
HOSTILE_REASON = "boom \x1b]0;PWNED\x07 \x1b[2Jcleared [bold red]not markup[/] \u202eevil \x9b2J"


def _forbidden(text: str) -> list[str]:
    """What must never reach a terminal from a host (rich's own colours, `ESC [ ... m`, are ours)."""
    return [s for s in ("\x1b]", "\x1b[2J", "\x07", "\u202e", "\x9b") if s in text]


def test_the_results_table_shows_a_hostile_reason_escaped_and_unstyled() -> None:
    import io

    from rich.console import Console

    from imageserving_fleet.fleet.render import print_results
    from imageserving_fleet.fleet.results import HostResult, Result

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=400, color_system="truecolor")
    print_results(console, [HostResult("h1", Result.FAILED, HOSTILE_REASON)])
    text = buf.getvalue()
    assert _forbidden(text) == []
    assert "\\x1b]0;PWNED\\x07 \\x1b[2Jcleared [bold red]not markup[/] \\u202eevil \\x9b2J" in text


def test_log_lines_escaped_unless_raw() -> None:
    import io

    from imageserving_fleet.fleet.logs import print_logs
    from imageserving_fleet.fleet.results import HostResult, Result

    hosts = [HostResult("h1", Result.OK, lines=("GET /\x1b]52;c;eA==\x07 200",)),
             HostResult("h2", Result.FAILED, HOSTILE_REASON)]
    out, err = io.StringIO(), io.StringIO()
    print_logs(hosts, out, err)
    assert out.getvalue() == "h1 | GET /\\x1b]52;c;eA==\\x07 200\n"
    assert _forbidden(err.getvalue()) == []
    out = io.StringIO()
    print_logs(hosts, out, io.StringIO(), raw=True)
    assert out.getvalue() == "h1 | GET /\x1b]52;c;eA==\x07 200\n"


def test_exporter_change_lines_are_escaped() -> None:
    import io

    from imageserving_fleet.fleet.exporter import make_log

    buf = io.StringIO()
    make_log(buf)(f"h1: ok -> failed ({HOSTILE_REASON})")
    assert _forbidden(buf.getvalue()) == [] and "\\x1b[2Jcleared" in buf.getvalue()


def test_markdown_and_csv_reports_escape_host_text() -> None:
    from imageserving_fleet.fleet.reports.formats import render_csv, render_md
    from imageserving_fleet.fleet.reports.model import build_report
    from imageserving_fleet.fleet.results import HostResult, Result

    report = build_report([HostResult("h1", Result.FAILED, HOSTILE_REASON)], "2026-12-07T00:00:00Z")
    for text in (render_md(report), render_csv(report)):
        assert _forbidden(text) == [] and "PWNED" in text
