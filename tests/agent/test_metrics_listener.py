"""The supervisor's own /metrics (supervisor.metrics.listen): a taken port fails the start clearly."""

from __future__ import annotations

import socket

from .conftest import Agent, component, config, prog


def test_a_metrics_port_in_use_fails_the_start_with_a_clear_message(agent: Agent) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        agent.write(f'supervisor:\n  metrics: {{listen: "127.0.0.1:{port}"}}\n'
                    + config(component("is", prog("leak", "1"))))
        proc = agent.run("start")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"supervisor.metrics.listen: cannot listen on 127.0.0.1:{port}: Address already in use" in proc.stderr
    assert agent.supervisor_pid() is None
