"""`status --watch` and `exporter` (commands/live.py): what is refused before a fan-out is opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageserving_fleet.errors import UsageError
from imageserving_fleet.fleet.commands import live
from tests.sshd import free_port, silent_listener


@pytest.mark.parametrize("interval, as_json, message", [
    (0.0, False, "--interval must be"), (2.0, True, "--watch is for a person"),
    (None, False, "needs a terminal"),  # pytest's stdin is no terminal
])
def test_watch_refusals(interval: float | None, as_json: bool, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        live.watch_interval(interval, as_json)


def test_exporter_listen_checks_the_interval_before_taking_the_port() -> None:
    with silent_listener() as taken:
        with pytest.raises(UsageError, match="--interval must be"):
            live.listen(f"127.0.0.1:{taken}", -5)
        with pytest.raises(UsageError, match="Address already in use"):
            live.listen(f"127.0.0.1:{taken}", 15)
    with pytest.raises(UsageError, match="cannot listen on 192.0.2.1:9464"):  # not an address of ours
        live.listen("192.0.2.1:9464", 15)
    port = free_port()
    sock, every = live.listen(f"127.0.0.1:{port}", 0.5)
    with sock:
        assert every == 0.5 and sock.getsockname()[1] == port


def test_notify_options() -> None:
    assert live.notify_options(None, "5m") is None
    assert live.notify_options("https://hooks.example.com/x", "30s") == live.Notify("https://hooks.example.com/x", 30.0)
    with pytest.raises(UsageError, match="--notify: expected an http:// or https:// URL, got 'hooks.example.com'"):
        live.notify_options("hooks.example.com", "5m")
    with pytest.raises(UsageError, match="--notify-interval: expected a duration"):
        live.notify_options("http://127.0.0.1:9/x", "often")


def test_sighup_rereads_the_inventory_found_at_start(tmp_path: Path) -> None:
    from imageserving_fleet.fleet.context import Command, select_targets

    from .fakehosts import FakeHosts

    ctx = FakeHosts(["a", "b"]).context(tmp_path, Command.EXPORTER, limit="a:c")
    assert [t.name for t in ctx.targets] == ["a"]
    (tmp_path / "hosts.yml").write_text('{"all": {"hosts": {"a": {}, "b": {}, "c": {}}}}')
    assert [t.name for t in select_targets(ctx.options, {})] == ["a", "c"]  # same file, same --limit
