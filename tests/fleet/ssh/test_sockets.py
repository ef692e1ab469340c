"""What a transport runs over, for real: a channel through a jump host (ProxyJump) and a
ProxyCommand's socketpair.
"""

from __future__ import annotations

import shlex

from imageserving_fleet.fleet.ssh import Connector
from imageserving_fleet.fleet.target import FleetOptions, make_target
from tests.sshd import SshServer, closed_port

from .helpers import soon, target_for, unreachable


def test_proxy_jump_through_the_same_sshd(sshd: SshServer, fleet_options: FleetOptions,
                                          connector: Connector) -> None:
    jump = f"-J {sshd.host}:{sshd.port}"
    targets = [target_for(sshd, fleet_options, name, ansible_ssh_common_args=jump) for name in ("a", "b")]
    assert connector.settings(targets[0]).proxy_jump == f"{sshd.host}:{sshd.port}"
    sessions = [connector.connect(target, soon()) for target in targets]
    for session in sessions:
        result = session.run("echo $SSH_CLIENT", timeout=5)
        assert result.exit_code == 0 and result.stdout.startswith(b"127.0.0.1 ")
    assert len(connector._jumps) == 1  # one connection to the jump host, shared


def test_proxy_jump_to_a_closed_port_is_refused(sshd: SshServer, fleet_options: FleetOptions,
                                                connector: Connector) -> None:
    with closed_port() as port:
        target = make_target("h1", {"ansible_host": "127.0.0.1", "ansible_port": port,
                                    "ansible_ssh_common_args": f"-o ProxyJump={sshd.host}:{sshd.port}"},
                             fleet_options)
        error, _ = unreachable(lambda: connector.connect(target, soon()))
    assert error.reason == "refused"


def test_proxy_command(sshd: SshServer, fleet_options: FleetOptions, connector: Connector) -> None:
    command = f"ssh -F {sshd.ssh_config_path} -W %h:%p {sshd.host}"
    target = target_for(sshd, fleet_options,
                        ansible_ssh_common_args=f"-o {shlex.quote('ProxyCommand=' + command)}")
    session = connector.connect(target, soon())
    assert session.run("echo via proxy", timeout=5).stdout == b"via proxy\n"
    broken = target_for(sshd, fleet_options,
                        ansible_ssh_common_args="-o 'ProxyCommand=echo nope >&2; exit 1'")
    error, _ = unreachable(lambda: connector.connect(broken, soon()))
    assert error.reason == "connection lost" and "nope" in error.detail
