"""The demo SVG server ("svg"): renders small SVG documents for anyone who asks over TCP.

It speaks the Image Server's line protocol (see :mod:`.imageserver`), one request per line:

    PING                             ->  PONG
    RENDER <width> <height> <text>   ->  OK <nbytes>, then exactly <nbytes> bytes of SVG (UTF-8)
    anything else                    ->  ERR <reason>

The document shows the text on a background whose colours come from the text itself, so the same
request always returns the same bytes.

Run it with ``python -m imageserving_fleet.agent.demo.svgserver [--port N]``
(port: ``--port``, else ``IMAGESERVING_SVG_PORT``, else 27346).
"""

from __future__ import annotations

import html
import sys
import zlib
from collections.abc import Sequence

from imageserving_fleet.agent.demo.lineserver import (
    HOST,
    LineServer,
    answer_line,
    block_stop_signals,
    listen_or_exit,
    make_parser,
    resolve_port,
)

DEFAULT_PORT = 27346
PORT_ENV = "IMAGESERVING_SVG_PORT"
MAX_TEXT = 1024
LABEL = "SVG server"


def render_svg(width: int, height: int, text: str) -> bytes:
    """Return a UTF-8 SVG document of the given size that shows ``text``, centred and escaped."""
    seed = zlib.crc32(text.encode("utf-8"))
    background = seed & 0xFFFFFF
    foreground = 0xFFFFFF ^ background  # the complement: readable on any background
    radius = min(width, height) * (20 + seed % 30) // 100
    # Roughly fit the text on one line: a glyph is about 0.6 em wide in a sans-serif face.
    font_size = max(6, min(height // 4, int(width / (0.6 * max(len(text), 1)))))
    escaped = html.escape(text, quote=True)
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">\n'
        f"  <title>{escaped}</title>\n"
        f'  <rect width="{width}" height="{height}" fill="#{background:06x}"/>\n'
        f'  <circle cx="{width // 2}" cy="{height // 2}" r="{radius}" fill="#{foreground:06x}" '
        'fill-opacity="0.25"/>\n'
        f'  <text x="{width // 2}" y="{height // 2}" font-family="sans-serif" font-size="{font_size}" '
        f'text-anchor="middle" dominant-baseline="middle" fill="#{foreground:06x}">{escaped}</text>\n'
        "</svg>\n"
    )
    return document.encode("utf-8")


class SvgServer(LineServer):
    """The SVG server: answers the line protocol with :func:`render_svg`."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, self._answer, LABEL)

    def _answer(self, line: bytes) -> bytes:
        return answer_line(line, render_svg, MAX_TEXT, "text")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the SVG server in the foreground until SIGTERM or SIGINT; return the exit status."""
    block_stop_signals()
    parser = make_parser(
        "Demo SVG server: renders SVG documents over a line protocol.", PORT_ENV, DEFAULT_PORT
    )
    args = parser.parse_args(argv)
    port = resolve_port(parser, args.port, PORT_ENV, DEFAULT_PORT)
    return listen_or_exit(LABEL, lambda: SvgServer((HOST, port)), port)


if __name__ == "__main__":
    sys.exit(main())
