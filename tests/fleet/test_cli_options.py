"""The fleet CLI's options come from their one declaration (options.Opt fields): every declared
flag is on its command with its help and default, and a command gets the declaration's instance."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from typer.testing import CliRunner

from imageserving_fleet.errors import UsageError
from imageserving_fleet.fleet.cli import app
from imageserving_fleet.fleet.cli.globals import with_options
from imageserving_fleet.fleet.commands.live import ExporterOptions, WatchOptions
from imageserving_fleet.fleet.commands.logs import LogsOptions
from imageserving_fleet.fleet.deploy.plan import DeployOptions
from imageserving_fleet.fleet.options import Options, declared
from imageserving_fleet.fleet.reports.options import MergeOptions, ReportOptions
from imageserving_fleet.fleet.rolling import RollingOptions

COMMANDS = [(["restart"], RollingOptions), (["reload"], RollingOptions), (["config", "push"], RollingOptions),
            (["status"], WatchOptions), (["exporter"], ExporterOptions), (["logs"], LogsOptions),
            (["deploy"], DeployOptions), (["report"], ReportOptions), (["report", "merge"], MergeOptions)]


def _click(path: list[str]) -> typer.core.TyperCommand:
    command = typer.main.get_command(app)
    ctx = typer.Context(command)
    for word in path:
        command = command.get_command(ctx, word)  # type: ignore[attr-defined]
    return command  # type: ignore[return-value]


@pytest.mark.parametrize("path, declaration", COMMANDS + [([], Options)], ids=lambda v: " ".join(v) if isinstance(
    v, list) else v.__name__)
def test_every_declared_option_is_on_its_command(path: list[str], declaration: type) -> None:
    params = {p.name: p for p in _click(path).params}
    for field, _, decl in declared(declaration):
        option = params[field.name]
        assert set(option.opts) | set(option.secondary_opts) >= set(decl.flags), field.name
        assert (option.help or "") == decl.help and option.metavar == decl.metavar


def test_a_command_gets_one_instance_of_its_declaration() -> None:
    seen: list[object] = []
    demo = typer.Typer()

    @demo.command()
    @with_options(RollingOptions, "opts")
    def roll(opts: RollingOptions, name: str = typer.Argument("x")) -> None:
        seen.append((name, opts))

    result = CliRunner().invoke(demo, ["y", "--serial", "1,50%", "--before", "true", "--hook-timeout", "5"])
    assert result.exit_code == 0, result.output
    assert seen == [("y", RollingOptions(serial="1,50%", before="true", hook_timeout=5.0))]


@pytest.mark.parametrize("opts, message", [
    (RollingOptions(serial="0"), "--serial"), (RollingOptions(max_fail_percentage=101), "--max-fail-percentage"),
    (RollingOptions(before=" "), "--before"), (RollingOptions(gate_http="ftp://x/"), "--gate-http"),
])
def test_rolling_options_are_checked_into_a_rolling(opts: RollingOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        opts.rolling(lambda: pytest.fail("asked for --confirm's question"))


def test_rolling_asks_for_the_question_only_with_confirm() -> None:
    question = lambda number, total, names: True  # noqa: E731
    assert RollingOptions().rolling(lambda: pytest.fail("asked")).confirm is None
    how = RollingOptions(serial="2", confirm=True, gate_http="http://127.0.0.1:8080/healthz").rolling(lambda: question)
    assert how.confirm is question and how.serial == "2" and how.gate is not None


def test_watch_options() -> None:
    assert WatchOptions().every(as_json=True) is None  # no --watch: a plain status run
    with pytest.raises(UsageError, match="--interval goes with --watch"):
        WatchOptions(interval=3).every(as_json=False)
    with pytest.raises(UsageError, match="--watch is for a person"):
        WatchOptions(watch=True, interval=3).every(as_json=True)


def test_report_options_reach_make_request_by_name() -> None:
    from imageserving_fleet.fleet.commands.report import make_request, request_of

    names = set(make_request.__code__.co_varnames[:make_request.__code__.co_kwonlyargcount])
    assert {f.name for f in dataclasses.fields(ReportOptions)} <= names
    assert request_of(MergeOptions(fmt="md", title="t"), quiet=True, as_json=False).fmt == "md"
    with pytest.raises(UsageError, match="--trend-runs"):
        request_of(ReportOptions(window=1), quiet=False, as_json=False)
