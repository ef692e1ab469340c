"""Write a list of host names short, as clush and dshbak do: `is[01-03,07],ps01`. Pure.

    fold(["is01", "is02", "is03", "is07", "ps01"])  ->  "is[01-03,07],ps01"

Rules (a table test holds each one):
- A name is cut into text and digit runs; names with the same text runs and the same digits
  everywhere but in one place fold on that place: `is01.dc1`, `is02.dc1` -> `is[01-02].dc1`.
  Where several places vary, the last one folds and the others stay written out
  (`r1-n[01-02],r2-n01`).
- Zero padding is kept, never guessed: a range takes its padding from its first number, and a
  number that would not be written the same way starts a range of its own (`is[7-8],is[07]` is
  `is7`, `is8` and `is07`; `is[09-10]` is `is09`, `is10`).
- A group of one host is the host's name, without brackets (`ps01`, not `ps[01]`).
- Names that already hold `[`, `]` or `,`, and names without digits, are written as they are.
- Order: each folded element where its first host stood in the input (inventory order); within
  an element, numbers ascending. Duplicates are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_RUNS = re.compile(r"(\d+)")
_UNFOLDABLE = re.compile(r"[\[\],]")


def _split(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`is01.dc1` -> (("is", ".dc", ""), ("01", "1")): the texts around the digit runs, and the runs."""
    parts = _RUNS.split(name)
    return tuple(parts[0::2]), tuple(parts[1::2])


def _join(texts: Sequence[str], digits: Sequence[str]) -> str:
    out = [texts[0]]
    for d, t in zip(digits, texts[1:], strict=True):
        out += [d, t]
    return "".join(out)


def ranges(numbers: Iterable[str]) -> list[str]:
    """Takes digit strings; returns them as ranges, ascending: ["01", "02", "03", "07"] -> ["01-03", "07"].

    A range `lo-hi` holds every number from lo to hi written with lo's width (zero-padded), so
    "7" and "07" never share one.
    """
    ordered = sorted(set(numbers), key=lambda d: (int(d), len(d)))
    out: list[list[str]] = []
    for d in ordered:
        if out:
            lo, hi = out[-1][0], out[-1][-1]
            if int(d) == int(hi) + 1 and d == str(int(d)).zfill(len(lo)):
                out[-1] = [lo, d]
                continue
        out.append([d])
    return [r[0] if len(r) == 1 else f"{r[0]}-{r[1]}" for r in out]


def fold(names: Iterable[str]) -> str:
    """Takes host names (inventory order); returns them folded as `is[01-03,07],ps01` (see the module)."""
    seen: dict[str, None] = dict.fromkeys(names)
    # Shape: (texts, number of digit runs). Within a shape, the place that folds is the last one
    # whose digits differ between its names.
    shapes: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for name in seen:
        if not _UNFOLDABLE.search(name):
            texts, digits = _split(name)
            if digits:
                shapes.setdefault(texts, []).append(digits)
    elements: dict[str, str] = {}  # first host of the element -> the element as written
    done: set[str] = set()
    for texts, members in shapes.items():
        places = [i for i in range(len(members[0])) if len({m[i] for m in members}) > 1]
        at = places[-1] if places else len(members[0]) - 1
        groups: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for m in members:
            groups.setdefault(m[:at] + m[at + 1:], []).append(m)
        for rest, group in groups.items():
            first = _join(texts, group[0])
            spans = ranges(m[at] for m in group)
            middle = spans[0] if len(group) == 1 else "[" + ",".join(spans) + "]"
            elements[first] = _join(texts, (*rest[:at], middle, *rest[at:]))
            done.update(_join(texts, m) for m in group)
    return ",".join(elements[n] if n in elements else n for n in seen if n in elements or n not in done)
