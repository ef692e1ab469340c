"""Durations, sizes and ${VAR:-default}: the human units of configuration files, as tables."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imageserving_fleet.units import (
    expand_vars,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)

# ------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("0.25m", 15.0),
        ("0s", 0.0),
        ("10", 10.0),  # a bare number in text is seconds
        ("2.5", 2.5),
        (" 5s ", 5.0),
        ("5 s", 5.0),
        ("1000ms", 1.0),
        (7, 7.0),  # YAML already made it a number
        (0, 0.0),
        (1.5, 1.5),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    result = parse_duration(value)
    assert isinstance(result, float)
    assert result == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "s",
        "5x",
        "5 sec",
        "5sec",
        "5S",  # units are case-sensitive: 5M would be ambiguous with sizes
        "1d",
        ".5s",
        "5.s",
        "1,5s",
        "5s5",
        "-5s",
        "-1",
        "1e3",
        "nan",
        "inf",
        None,
        [5],
        {"s": 5},
    ],
)
def test_parse_duration_rejects_bad_values(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, -0.5, -1e-9])
def test_parse_duration_rejects_negative_numbers(value: float) -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_bools(value: bool) -> None:
    # YAML reads `yes`/`no`/`true` as bools; True must not silently become one second.
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_parse_duration_rejects_non_finite_numbers(value: float) -> None:
    # `stop_timeout: .nan` makes every `now >= deadline` false: the component is never SIGKILLed.
    with pytest.raises(ValueError):
        parse_duration(value)


UNITS = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(UNITS))
def test_parse_duration_units_scale(n: int, unit: tuple[str, float]) -> None:
    suffix, factor = unit
    assert parse_duration(f"{n}{suffix}") == pytest.approx(n * factor)


# ---------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("value", "nbytes"),
    [
        ("512KiB", 512 * 1024),
        ("10MiB", 10 * 2**20),
        ("2GiB", 2 * 2**30),
        ("1TiB", 2**40),
        ("10MB", 10 * 10**6),  # decimal units are decimal
        ("1KB", 1000),
        ("1GB", 10**9),
        ("1TB", 10**12),
        ("10mib", 10 * 2**20),  # size units are case-insensitive
        ("1kib", 1024),
        ("100B", 100),
        ("100", 100),
        ("1.5GiB", 3 * 2**29),
        ("0.5KiB", 512),
        (" 10 MiB ", 10 * 2**20),
        (4096, 4096),
        (0, 0),
        (1.5, 1),  # a float from YAML: truncated to whole bytes
    ],
)
def test_parse_size(value: object, nbytes: int) -> None:
    result = parse_size(value)
    assert isinstance(result, int)
    assert result == nbytes


def test_parse_size_mb_and_mib_differ() -> None:
    assert parse_size("1MiB") - parse_size("1MB") == 2**20 - 10**6


@pytest.mark.parametrize(
    "value",
    [
        "",
        "MiB",
        "10XB",
        "10 MiBs",
        "10M",
        "10Mi",
        "10iB",
        "-1MiB",
        "-1",
        "1e6",
        ".5MiB",
        "ten",
        None,
        [1],
        -1.5,
    ],
)
def test_parse_size_rejects_bad_values(value: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


def test_parse_size_rejects_negative_int() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_size(-1)


@pytest.mark.parametrize("value", [True, False])
def test_parse_size_rejects_bools(value: bool) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


def test_parse_size_huge_number_is_a_value_error() -> None:
    # float("9" * 400) is inf, and int(inf) raises OverflowError, which config.py does not catch.
    with pytest.raises(ValueError):
        parse_size("9" * 400 + "MiB")


# ---------------------------------------------------------------- expand_vars

ENV = {"HOME_DIR": "/srv/is", "EMPTY": "", "PORT": "8080", "A": "a", "B": "b"}


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("plain text", "plain text"),
        ("${HOME_DIR}", "/srv/is"),
        ("${HOME_DIR}/bin/ImageServer", "/srv/is/bin/ImageServer"),
        ("127.0.0.1:${PORT}", "127.0.0.1:8080"),
        ("${A}${B}", "ab"),
        ("x${A}y${B}z", "xaybz"),
        # :- replaces unset and empty values
        ("${UNSET:-27345}", "27345"),
        ("${EMPTY:-27345}", "27345"),
        ("${PORT:-27345}", "8080"),
        ("${UNSET:-}", ""),
        ("${UNSET:-a b:c-d}", "a b:c-d"),
        ("http://127.0.0.1:${UNSET:-8080}/healthz", "http://127.0.0.1:8080/healthz"),
        # - replaces only unset values
        ("${UNSET-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${PORT-dflt}", "8080"),
        # not variables: left alone
        ("$HOME_DIR", "$HOME_DIR"),
        ("$", "$"),
        ("${}", "${}"),
        ("${1X}", "${1X}"),
        ("costs $5", "costs $5"),
        ("${EMPTY}", ""),
    ],
)
def test_expand_vars(text: str, expanded: str) -> None:
    assert expand_vars(text, ENV) == expanded


@pytest.mark.parametrize("text", ["${UNSET}", "prefix ${UNSET} suffix", "${A}${UNSET}"])
def test_expand_vars_unset_variable_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="UNSET is not set") as info:
        expand_vars(text, ENV)
    assert "${UNSET:-default}" in str(info.value)  # the message shows the fix


def test_expand_vars_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGESERVING_UNITS_TEST", "from-env")
    monkeypatch.delenv("IMAGESERVING_UNITS_UNSET", raising=False)
    assert expand_vars("${IMAGESERVING_UNITS_TEST}") == "from-env"
    assert expand_vars("${IMAGESERVING_UNITS_UNSET:-d}") == "d"


def test_expand_vars_does_not_expand_recursively() -> None:
    # A value that itself looks like ${...} is used as is, never re-expanded.
    assert expand_vars("${X}", {"X": "${A}"}) == "${A}"


def test_expand_vars_nested_default_is_expanded_or_refused() -> None:
    # The shell expands the inner variable; here `[^}]*` stops at the inner `}` and the result is
    # the literal "${B}" with no error, so a port or path would silently be that text.
    try:
        result = expand_vars("${UNSET:-${B}}", ENV)
    except ValueError:
        return
    assert result == "b"


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=50))
def test_expand_vars_without_dollar_is_identity(text: str) -> None:
    assert expand_vars(text, {}) == text


# ------------------------------------------------------------------ formatting


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0.0s"),
        (0.8, "0.8s"),
        (9.94, "9.9s"),
        (10, "10s"),
        (59.9, "59s"),
        (60, "1m 00s"),
        (252, "4m 12s"),
        (3599, "59m 59s"),
        (3600, "1h 00m"),
        (7500, "2h 05m"),
        (86399, "23h 59m"),
        (86400, "1d 0h"),
        (3 * 86400 + 4 * 3600 + 59, "3d 4h"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (19316000, "18.4 MiB"),
        (2**20, "1.0 MiB"),
        (2**30, "1.0 GiB"),
        (8 * 2**30, "8.0 GiB"),
        (2**40, "1024.0 GiB"),  # GiB is the largest unit shown
    ],
)
def test_format_size(nbytes: int | None, text: str) -> None:
    assert format_size(nbytes) == text


@given(st.integers(min_value=0, max_value=2**50))
def test_format_size_reads_back_close(nbytes: int) -> None:
    text = format_size(nbytes)
    number, unit = text.split()
    back = parse_size(f"{number}{unit}")
    assert back == pytest.approx(nbytes, rel=0.05, abs=1)
