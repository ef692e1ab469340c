"""hostlist.fold: host lists written short as clush/dshbak do, table-tested (pure)."""

from __future__ import annotations

import re

import pytest

from imageserving_fleet.fleet.hostlist import fold, ranges


@pytest.mark.parametrize(("names", "folded"), [
    ([], ""),
    (["is01"], "is01"),                                              # one host: no brackets
    (["web"], "web"),                                                # no digits
    (["is01", "is02", "is03", "is07"], "is[01-03,07]"),
    (["is07", "is01", "is03", "is02"], "is[01-03,07]"),              # numbers ascending whatever the input order
    (["is01", "is03"], "is[01,03]"),
    (["is1", "is2", "is3"], "is[1-3]"),
    (["is09", "is10", "is11"], "is[09-11]"),                         # padding from the range's first number
    (["is8", "is9", "is10"], "is[8-10]"),                            # unpadded crosses a width
    (["is7", "is07"], "is[7,07]"),                                   # never merged: 7 and 07 are two hosts
    (["is07", "is8"], "is[07,8]"),                                   # 08 is not 8
    (["is007", "is008", "is07"], "is[07,007-008]"),
    (["is99", "is100"], "is[99-100]"),
    (["is01", "is02", "ps01", "ps02", "svg1"], "is[01-02],ps[01-02],svg1"),   # mixed prefixes
    (["ps01", "is01", "is02", "ps02"], "ps[01-02],is[01-02]"),      # elements in the order of their first host
    (["is01.dc1", "is02.dc1", "is03.dc1"], "is[01-03].dc1"),        # suffixes, digits in them too
    (["is01.dc1", "is01.dc2"], "is01.dc[1-2]"),
    (["r1-n01", "r1-n02", "r2-n01"], "r1-n[01-02],r2-n01"),         # two places vary: the last folds
    (["10.0.0.1", "10.0.0.2", "10.0.0.3"], "10.0.0.[1-3]"),
    (["is01", "is01", "is02"], "is[01-02]"),                         # duplicates dropped
    (["web", "is01", "db", "is02"], "web,is[01-02],db"),
    (["h[1]", "h2", "a,b"], "h[1],h2,a,b"),                          # already bracketed or with commas: as they are
    (["is01.example.com", "is02.example.com", "is04.example.com"], "is[01-02,04].example.com"),
    (["1", "2", "3"], "[1-3]"),
])
def test_fold(names: list[str], folded: str) -> None:
    assert fold(names) == folded


@pytest.mark.parametrize(("numbers", "spans"), [
    (["01", "02", "03", "07"], ["01-03", "07"]),
    (["3", "1", "2"], ["1-3"]),
    (["09", "10"], ["09-10"]),
    (["9", "010"], ["9", "010"]),
    (["5"], ["5"]),
])
def test_ranges(numbers: list[str], spans: list[str]) -> None:
    assert ranges(numbers) == spans


def _expand(folded: str) -> set[str]:
    """The inverse, for the round trip below (clush's reading of a folded list)."""
    out: set[str] = set()
    for element in re.findall(r"[^,\[]*(?:\[[^\]]*\][^,\[]*)*", folded):
        if not element:
            continue
        m = re.fullmatch(r"(.*?)\[([^\]]*)\](.*)", element)
        if not m:
            out.add(element)
            continue
        for span in m.group(2).split(","):
            lo, _, hi = span.partition("-")
            for n in range(int(lo), int(hi or lo) + 1):
                out.add(f"{m.group(1)}{str(n).zfill(len(lo))}{m.group(3)}")
    return out


@pytest.mark.parametrize("names", [
    [f"is{n:02d}" for n in (1, 2, 3, 7, 8, 10, 11, 99, 100)],
    [f"h{n}" for n in range(1, 21)] + ["h07", "h007", "db1.dc2", "db2.dc2", "x"],
])
def test_fold_round_trips(names: list[str]) -> None:
    assert _expand(fold(names)) == set(names)
