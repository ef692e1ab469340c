"""The run context (context.py) and the options' one declaration (options.py): resolved once, at the edge."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imageserving_fleet.errors import InventoryError, UsageError
from imageserving_fleet.fleet.context import ACTION_TIMEOUT, STATUS_TIMEOUT, Command, Source, resolve
from imageserving_fleet.fleet.options import Options, declared, hoisted

LOCAL = "all:\n  hosts:\n    here:\n      ansible_connection: local\n"
BECOMES = "all:\n  hosts:\n    root1:\n      ansible_host: 127.0.0.1\n      ansible_become: true\n    plain:\n"


def _inventory(tmp_path: Path, text: str = LOCAL, name: str = "hosts.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_inventory_comes_from_the_option_else_the_variable_else_the_default(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ansible.cfg of the developer's
    a, b = _inventory(tmp_path, name="a.yml"), _inventory(tmp_path, name="b.yml")
    env = {"IMAGESERVING_INVENTORY": f"{a}{os.pathsep}{os.pathsep}{b}"}

    def paths(options: Options, environ: dict[str, str]) -> tuple[list[str], Source]:
        ctx = resolve(options, environ, Command.HOSTS)
        assert ctx.wide is not None
        return list(ctx.wide.inventories.value), ctx.sources["inventory"]

    assert paths(Options(inventory=(a,)), env) == ([a], Source.OPTION)
    assert paths(Options(), env) == ([a, b], Source.ENVIRONMENT)
    assert paths(Options(), {}) == ([], Source.DEFAULT)  # no ./inventory/hosts.yml here: localhost only
    (tmp_path / "ansible.cfg").write_text(f"[defaults]\ninventory = {b}\n")
    assert paths(Options(), {}) == ([b], Source.ANSIBLE)
    (tmp_path / "ansible.cfg").unlink()
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(LOCAL)
    assert paths(Options(), {}) == (["inventory/hosts.yml"], Source.DEFAULT)
    ctx = resolve(Options(), {}, Command.STATUS)
    assert [t.name for t in ctx.targets] == ["here"] and ctx.sources["inventory"] is Source.DEFAULT


def test_the_inventory_is_read_once_and_hosts_selected_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imageserving_fleet.fleet import context

    calls: list[list[str]] = []
    real = context.load_inventory
    monkeypatch.setattr(context, "load_inventory",
                        lambda paths, *more: calls.append(list(paths)) or real(paths, *more))
    path = _inventory(tmp_path, BECOMES)
    ctx = resolve(Options(inventory=(path,), limit="root*"), {}, Command.HOSTS)
    assert calls == [[path]] and [h.name for h in ctx.hosts] == [t.name for t in ctx.targets] == ["root1"]


@pytest.mark.parametrize("command, timeout", [(Command.STATUS, STATUS_TIMEOUT), (Command.PING, STATUS_TIMEOUT),
                                              (Command.REPORT, STATUS_TIMEOUT), (Command.EXPORTER, STATUS_TIMEOUT),
                                              (Command.WATCH, STATUS_TIMEOUT), (Command.RESTART, ACTION_TIMEOUT),
                                              (Command.LOGS, ACTION_TIMEOUT), (Command.DEPLOY, ACTION_TIMEOUT)])
def test_each_commands_default_deadline(tmp_path: Path, command: Command, timeout: float) -> None:
    path = _inventory(tmp_path)
    assert resolve(Options(inventory=(path,)), {}, command).timeout == timeout
    assert resolve(Options(inventory=(path,), timeout=7.5), {}, command).timeout == 7.5


@pytest.mark.parametrize("options, message", [
    ({"forks": 0}, "--forks must be at least 1"), ({"timeout": 0.0}, "--timeout must be"),
    ({"timeout": float("nan")}, "--timeout must be"), ({"timeout": 1e8}, "--timeout must be"),
    ({"cluster": "udp://x:1"}, "--cluster 'udp://x:1'"),
])
def test_bad_options_are_usage_errors(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve(Options(inventory=(_inventory(tmp_path),), **options), {}, Command.STATUS)  # type: ignore[arg-type]


@pytest.mark.parametrize("options, message", [({"host_key_policy": "yolo"}, "--host-key-policy"),
                                              ({"connect_timeout": 0.0}, "--connect-timeout")])
def test_ssh_options_are_refused_as_they_are_parsed(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Options(**options)  # type: ignore[arg-type]


def test_a_bad_inventory_is_an_inventory_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="matches no host"):
        resolve(Options(inventory=(_inventory(tmp_path),), limit="nomatch*"), {}, Command.STATUS)


class Prompt:
    def __init__(self) -> None:
        self.asked = 0

    def __call__(self, text: str) -> str:
        self.asked += 1
        return "s3cr3t-typed"


@pytest.mark.parametrize("text, limit, env, ask, command, want, prompts", [
    (BECOMES, None, {}, True, Command.STATUS, "s3cr3t-typed", 1),                 # -K: asked once for the run
    (BECOMES, None, {"IMAGESERVING_BECOME_PASS": "s3cr3t-env"}, True, Command.STATUS, "s3cr3t-env", 0),
    (BECOMES, None, {"IMAGESERVING_BECOME_PASS": "s3cr3t-env"}, False, Command.RESTART, "s3cr3t-env", 0),
    (BECOMES, None, {}, False, Command.STATUS, None, 0),                   # sudo -n then
    (BECOMES, "plain", {}, True, Command.STATUS, None, 0),                 # no selected host becomes
    (BECOMES, None, {}, True, Command.HOSTS, None, 0),                     # contacts nothing
], ids=["prompt", "env-over-prompt", "env", "none", "no-become-host", "hosts"])
def test_the_become_password_is_resolved_once(tmp_path: Path, text: str, limit: str | None, env: dict[str, str],
                                              ask: bool, command: Command, want: str | None, prompts: int) -> None:
    prompt = Prompt()
    ctx = resolve(Options(inventory=(_inventory(tmp_path, text),), limit=limit, ask_become_pass=ask), env, command,
                  prompt=prompt)
    assert (ctx.become_password, prompt.asked) == (want, prompts)
    assert "s3cr3t" not in repr(ctx)


def test_the_cluster_comes_from_the_option_else_the_variable(tmp_path: Path) -> None:
    path = _inventory(tmp_path)
    env = {"IMAGESERVING_CLUSTER": "local:2"}
    from_env = resolve(Options(inventory=(path,)), env, Command.STATUS)
    assert (str(from_env.cluster), from_env.sources["cluster"]) == ("local:2", Source.ENVIRONMENT)
    given = resolve(Options(inventory=(path,), cluster="tcp://h:1"), env, Command.STATUS)
    assert (str(given.cluster), given.sources["cluster"]) == ("tcp://h:1", Source.OPTION)
    assert resolve(Options(inventory=(path,)), {}, Command.STATUS).cluster is None


def test_every_global_option_is_declared_once_and_hoisted() -> None:
    with_value, flags = hoisted()
    names = [f.name for f, _, _ in declared()]
    assert len(names) == len(set(names)) and all(d.flags for _, _, d in declared())
    assert {"-i", "--inventory", "-l", "--cluster", "--timeout", "-f"} <= set(with_value)
    assert {"--json", "-K", "-b", "-q", "-v"} <= set(flags) and not set(flags) & set(with_value)
    envs = {d.env for _, _, d in declared() if d.env}
    assert envs == {"IMAGESERVING_INVENTORY", "IMAGESERVING_CLUSTER", "IMAGESERVING_AUDIT_LOG", "IMAGESERVING_PERSIST"}


def test_the_cli_offers_every_declared_option(capsys: pytest.CaptureFixture[str]) -> None:
    from imageserving_fleet.fleet.main import main

    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    shown = capsys.readouterr().out
    assert exited.value.code == 0
    for _, _, decl in declared():
        assert all(flag in shown for flag in decl.flags), decl.flags


def test_a_change_has_an_audit_log_and_a_read_has_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = _inventory(tmp_path)
    assert resolve(Options(inventory=(path,)), {}, Command.STATUS).audit_log is None
    default = resolve(Options(inventory=(path,)), {}, Command.RESTART)
    assert default.audit_log == tmp_path / ".imageserving-fleet" / "audit.jsonl"
    assert default.inventory_paths == (path,)
    env = {"IMAGESERVING_AUDIT_LOG": "/x/env.jsonl"}
    assert resolve(Options(inventory=(path,)), env, Command.STOP).audit_log == Path("/x/env.jsonl")
    given = resolve(Options(inventory=(path,), audit_log="/x/opt.jsonl"), env, Command.DEPLOY)
    assert given.audit_log == Path("/x/opt.jsonl")
