"""The demo Image Server ("is"): renders small PNG images for anyone who asks over TCP.

One request per line (UTF-8), any number of requests per connection:

    PING                             ->  PONG
    RENDER <width> <height> <name>   ->  OK <nbytes>, then exactly <nbytes> bytes of PNG
    anything else                    ->  ERR <reason>   (the connection stays usable)

Every request is written to an access log in the Apache common format, one file per day
(`access-YYYY-MM-DD.log`, as a Scene7 Image Server names it) under ``$IMAGESERVING_HOME/logs/is/``
(the supervisor sets IMAGESERVING_HOME for its components), so `imageserving logs is:access` has a
real server log to read.

The picture is a pure function of (width, height, name), so the same request always returns the
same bytes. Rendered images stay in an in-memory LRU cache, which gives the process real memory for
the supervisor's status to report.

The serving shell it shares with the SVG server and the Platform Server (ports, the line protocol,
SIGTERM as a clean exit 0) is lineserver.py. Only the standard library is imported, and little of
it, so the process listens within milliseconds.

Run it with ``python -m imageserving_fleet.agent.demo.imageserver [--port N]``
(port: ``--port``, else ``IMAGESERVING_IS_PORT``, else 27345).
"""

from __future__ import annotations

import struct
import sys
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence

from .lineserver import (
    HOST,
    AccessLog,
    LineServer,
    answer_line,
    block_stop_signals,
    listen_or_exit,
    log,
    make_parser,
    resolve_port,
)

DEFAULT_PORT = 27345
PORT_ENV = "IMAGESERVING_IS_PORT"
MAX_NAME = 256
CACHE_MAX_BYTES = 64 * 1024 * 1024
CACHE_MAX_ENTRIES = 4096

# --------------------------------------------------------------------------- the Image Server


class ImageCache:
    """A thread-safe least-recently-used cache of rendered images, bounded in bytes and entries."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES, max_entries: int = CACHE_MAX_ENTRIES) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.size_bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[int, int, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, str]) -> bytes | None:
        """Return the cached image for ``key`` (and mark it recently used), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[int, int, str], value: bytes) -> None:
        """Store an image, evicting the least recently used ones beyond the limits."""
        if len(value) > self.max_bytes:
            return  # would evict everything and still not fit
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size_bytes -= len(old)
            self._items[key] = value
            self.size_bytes += len(value)
            while self.size_bytes > self.max_bytes or len(self._items) > self.max_entries:
                _, evicted = self._items.popitem(last=False)
                self.size_bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def render_png(width: int, height: int, name: str) -> bytes:
    """Draw a checkerboard with a vertical fade whose colours and tile size come from ``name``.

    Rows are built with bytes repetition rather than pixel by pixel, so even a 2000x2000 image
    takes milliseconds of Python time; zlib does the rest.
    """
    seed = zlib.crc32(name.encode("utf-8"))
    tile = 8 + seed % 24
    first = (seed & 0xFF, (seed >> 8) & 0xFF, (seed >> 16) & 0xFF)
    second = tuple(255 - c for c in first)  # the complement, so neighbouring tiles always contrast
    repeats = width // (2 * tile) + 1
    rows = []
    for y in range(height):
        fade = 256 - (y * 128) // height  # from full colour at the top to half at the bottom
        a = bytes(c * fade >> 8 for c in first)
        b = bytes(c * fade >> 8 for c in second)
        pair = a * tile + b * tile if (y // tile) % 2 == 0 else b * tile + a * tile
        rows.append(b"\x00" + (pair * repeats)[: 3 * width])  # filter byte 0: the row as is
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"tEXt", b"Title\x00" + name.encode("latin-1", "replace")),
            _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 6)),
            _png_chunk(b"IEND", b""),
        )
    )


class ImageServer(LineServer):
    """The Image Server: answers the line protocol, rendering through an :class:`ImageCache`."""

    def __init__(self, address: tuple[str, int], cache: ImageCache | None = None,
                 access: AccessLog | None = None) -> None:
        self.cache = cache if cache is not None else ImageCache()
        self.access = access
        super().__init__(address, self._answer, "Image Server")

    def served(self, client: tuple[str, int], request: bytes, reply: bytes) -> None:
        if self.access is not None:
            self.access.write(client, request, reply)

    def _answer(self, line: bytes) -> bytes:
        return answer_line(line, self.render, MAX_NAME)

    def render(self, width: int, height: int, name: str) -> bytes:
        """Return the PNG for a request, from the cache when it was rendered before."""
        key = (width, height, name)
        image = self.cache.get(key)
        if image is None:
            image = render_png(width, height, name)
            self.cache.put(key, image)
            log(self.label, f"rendered {name!r} {width}x{height}: {len(image)} bytes")
        return image

    def server_close(self) -> None:
        super().server_close()
        cache = self.cache
        log(
            self.label,
            f"cache: {len(cache)} images, {cache.size_bytes} bytes, {cache.hits} hits, {cache.misses} misses",
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the Image Server in the foreground until SIGTERM or SIGINT; return the exit status."""
    block_stop_signals()
    parser = make_parser(
        "Demo Image Server: renders PNG images over a line protocol.", PORT_ENV, DEFAULT_PORT
    )
    args = parser.parse_args(argv)
    port = resolve_port(parser, args.port, PORT_ENV, DEFAULT_PORT)
    access = AccessLog.from_environment()
    return listen_or_exit("Image Server", lambda: ImageServer((HOST, port), access=access), port)


if __name__ == "__main__":
    sys.exit(main())
