"""ansible.cfg and ANSIBLE_* (fleet/ansiblecfg.py), the run-wide settings (runwide.py) and the per-host
ones (target.make_target) with their sources: tables on files in tmp_path. ansible-core itself is
asked the same questions in test_ansible_project_differential.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imageserving_fleet.errors import AnsibleConfigError, InventoryVariableError
from imageserving_fleet.fleet.ansiblecfg import find_config_file, load_ansible_config
from imageserving_fleet.fleet.runwide import CommandLine, resolve_run
from imageserving_fleet.fleet.sshargs import unsupported_ssh_args
from imageserving_fleet.fleet.target import FleetOptions, make_target


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME without ~/.ansible.cfg, so the developer's never counts."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def project(tmp_path: Path, cfg: str | None) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir(exist_ok=True)
    if cfg is not None:
        (proj / "ansible.cfg").write_text(cfg)
    return proj


def test_the_search_order(tmp_path: Path, home: Path) -> None:
    proj = project(tmp_path, "[defaults]\n")
    (home / ".ansible.cfg").write_text("[defaults]\n")
    other = tmp_path / "other.cfg"
    other.write_text("[defaults]\n")
    assert find_config_file({}, str(proj))[0] == str(proj / "ansible.cfg")
    assert find_config_file({"ANSIBLE_CONFIG": str(other)}, str(proj))[0] == str(other)
    assert find_config_file({"ANSIBLE_CONFIG": str(proj)}, str(tmp_path))[0] == str(proj / "ansible.cfg")  # a dir
    assert find_config_file({}, str(tmp_path))[0] == str(home / ".ansible.cfg")
    # ANSIBLE_CONFIG naming nothing falls through, as in ansible-core
    assert find_config_file({"ANSIBLE_CONFIG": str(tmp_path / "nope")}, str(proj))[0] == str(proj / "ansible.cfg")


def test_a_world_writable_directory_s_cfg_is_ignored_and_said(tmp_path: Path, home: Path) -> None:
    proj = project(tmp_path, "[defaults]\nremote_user = x\n")
    proj.chmod(0o777)
    try:
        path, warnings = find_config_file({}, str(proj))
        assert path is None or path == "/etc/ansible/ansible.cfg"
        assert len(warnings) == 1 and "world-writable" in warnings[0]
    finally:
        proj.chmod(0o755)


CFG = """\
[defaults]
inventory = inventory/hosts, other.yml
remote_user = deploy   ; an inline comment
private_key_file = keys/id_ed25519
forks = 7
timeout = 4
host_key_checking = False
remote_port = 2200

[privilege_escalation]
become = True
become_user = app
become_method = sudo

[ssh_connection]
ssh_args = -F ./ssh-bastion.conf -o ControlMaster=auto
ssh_common_args = -o ProxyJump=bastion
host_key_checking = true
"""


def test_every_honoured_setting_with_its_file_and_line(tmp_path: Path, home: Path) -> None:
    proj = project(tmp_path, CFG)
    cfg = load_ansible_config({}, str(proj))
    where = f"ansible.cfg {proj / 'ansible.cfg'}"
    assert cfg.inventory is not None
    assert cfg.inventory.value == (str(proj / "inventory/hosts"), str(proj / "other.yml"))
    assert cfg.inventory.source == f"{where}:2 inventory"
    assert cfg.remote_user is not None and cfg.remote_user.value == "deploy"
    assert cfg.private_key_file is not None and cfg.private_key_file.value == "keys/id_ed25519"  # as ssh reads it
    assert (cfg.forks and cfg.forks.value, cfg.timeout and cfg.timeout.value) == (7, 4)
    assert cfg.remote_port is not None and cfg.remote_port.value == 2200
    # two entries for one setting: the last one set wins ([ssh_connection] after [defaults])
    assert cfg.host_key_checking is not None and cfg.host_key_checking.value is True
    assert cfg.host_key_checking.source == f"{where}:18 host_key_checking"
    assert cfg.become is not None and cfg.become.value is True and cfg.become.source == f"{where}:11 become"
    assert cfg.ssh_args is not None and cfg.ssh_args.value == ("-F", "./ssh-bastion.conf", "-o", "ControlMaster=auto")
    assert cfg.ssh_common_args is not None and cfg.ssh_common_args.value == ("-o", "ProxyJump=bastion")


def test_environment_variables_beat_the_file_and_resolve_paths_from_the_current_directory(
        tmp_path: Path, home: Path) -> None:
    proj = project(tmp_path, CFG)
    env = {"ANSIBLE_REMOTE_USER": "envuser", "ANSIBLE_PRIVATE_KEY_FILE": "k", "ANSIBLE_HOST_KEY_CHECKING": "no",
           "ANSIBLE_INVENTORY": "a.yml,b.yml", "ANSIBLE_BECOME": "0", "ANSIBLE_SSH_TIMEOUT": "9"}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    cfg = load_ansible_config({**env, "ANSIBLE_CONFIG": str(proj / "ansible.cfg")}, str(cwd))
    assert cfg.remote_user is not None and cfg.remote_user.value == "envuser"
    assert cfg.remote_user.source == "env ANSIBLE_REMOTE_USER"
    assert cfg.private_key_file is not None and cfg.private_key_file.value == "k"
    assert cfg.inventory is not None and cfg.inventory.value == (str(cwd / "a.yml"), str(cwd / "b.yml"))
    assert cfg.host_key_checking is not None and cfg.host_key_checking.value is False
    assert cfg.become is not None and cfg.become.value is False
    assert cfg.timeout is not None and cfg.timeout.value == 9


@pytest.mark.parametrize(("text", "says"), [
    ("remote_user = x\n", ":1: 'remote_user = x' comes before any [section]"),
    ("[defaults]\nforks = 5\nforks = 6\n", ":3: option 'forks' in [defaults] appears twice"),
    ("[defaults]\nforks = many\n", ":2 forks: expected a whole number, got 'many'"),
    ("[defaults]\nremote_port = 70000\n", ":2 remote_port: expected a port number 1-65535"),
    ("[defaults]\n  = x\n", ":2: cannot parse"),
    ("[ssh_connection]\nssh_args = -o 'x\n", "ssh_args: cannot split"),
])
def test_a_malformed_file_is_an_error_with_file_and_line(tmp_path: Path, home: Path, text: str, says: str) -> None:
    proj = project(tmp_path, text)
    with pytest.raises(AnsibleConfigError) as caught:
        load_ansible_config({}, str(proj))
    assert str(proj / "ansible.cfg") in str(caught.value) and says in str(caught.value)


def test_a_bad_environment_value_names_the_variable(tmp_path: Path, home: Path) -> None:
    with pytest.raises(AnsibleConfigError, match="environment variable ANSIBLE_FORKS: expected a whole number"):
        load_ansible_config({"ANSIBLE_FORKS": "x"}, str(project(tmp_path, None)))


# ----------------------------------------------------------------------- run-wide settings


def wide(tmp_path: Path, cfg: str | None, env: dict[str, str] | None = None, **cli: object):  # type: ignore[no-untyped-def]
    proj = project(tmp_path, cfg)
    env = env or {}
    return resolve_run(CommandLine(**cli), env, load_ansible_config(env, str(proj)), str(proj))  # type: ignore[arg-type]


def test_precedence_of_run_wide_settings(tmp_path: Path, home: Path) -> None:
    (tmp_path / "proj" / "inventory").mkdir(parents=True)
    (tmp_path / "proj" / "inventory" / "hosts").write_text("h\n")
    (tmp_path / "proj" / "other.yml").write_text("all: {}\n")
    run = wide(tmp_path, CFG.replace("host_key_checking = true\n", ""))
    assert run.host_key_policy.value == "warn" and "host_key_checking = False" in run.host_key_policy.source
    assert (run.forks.value, run.connect_timeout.value) == (7, 4.0)
    assert run.inventories.source.endswith(":2 inventory")
    run = wide(tmp_path, CFG, host_key_policy="accept-new", forks=3, connect_timeout=2.0, inventories=["x.yml"])
    assert (run.host_key_policy.value, run.forks.value, run.connect_timeout.value) == ("accept-new", 3, 2.0)
    assert run.inventories.value == ("x.yml",) and run.inventories.source == "command line -i"
    run = wide(tmp_path, CFG, {"IMAGESERVING_INVENTORY": "a.yml:b.yml"})
    assert run.inventories.value == ("a.yml", "b.yml") and run.inventories.source == "env IMAGESERVING_INVENTORY"


def test_unsupported_ssh_arguments_are_named_in_one_warning(tmp_path: Path, home: Path) -> None:
    (tmp_path / "proj" / "inventory").mkdir(parents=True)
    (tmp_path / "proj" / "inventory" / "hosts").write_text("h\n")
    (tmp_path / "proj" / "other.yml").write_text("all: {}\n")
    run = wide(tmp_path, CFG)
    warnings = [n for n in run.notices if "not honoured" in n]
    assert len(warnings) == 1 and "-o ControlMaster=auto" in warnings[0] and ":16 ssh_args" in warnings[0]
    assert "ProxyJump=bastion" not in warnings[0] and "-F ./ssh-bastion.conf" not in warnings[0]


@pytest.mark.parametrize(("args", "left"), [
    (["-C", "-o", "ControlPersist=60s", "-o", "Port=22"], ["-C", "-o ControlPersist=60s"]),
    (["-F", "x", "-J", "b", "-i", "k", "-l", "u", "-p", "2"], []),
    (["-oStrictHostKeyChecking=no", "-A"], ["-A"]),
    (["-L", "8080:localhost:80"], ["-L 8080:localhost:80"]),
])
def test_unsupported_ssh_args(args: list[str], left: list[str]) -> None:
    assert unsupported_ssh_args(args) == left


def test_an_inventory_the_configuration_names_must_exist(tmp_path: Path, home: Path) -> None:
    with pytest.raises(AnsibleConfigError, match=r"ansible.cfg:2 inventory: inventory .*/inventory/hosts.* does not"):
        wide(tmp_path, CFG)


def test_no_inventory_anywhere_falls_back_with_a_notice(tmp_path: Path, home: Path) -> None:
    run = wide(tmp_path, None)
    assert run.inventories.value == ()
    assert any("using the packaged inventory (localhost only)" in n for n in run.notices)


# ----------------------------------------------------------------------- per host


def options_from(tmp_path: Path, cfg: str, env: dict[str, str] | None = None, **cli: object) -> FleetOptions:
    proj = project(tmp_path, cfg)
    return FleetOptions(ansible=load_ansible_config(env or {}, str(proj)), **cli)  # type: ignore[arg-type]


HOST_CFG = """\
[defaults]
remote_user = cfguser
private_key_file = /k/cfg
remote_port = 2200
[privilege_escalation]
become = yes
become_user = app
[ssh_connection]
ssh_common_args = -o ProxyJump=cfgbastion
"""


@pytest.mark.parametrize(("vars", "cli", "env", "expect"), [
    ({}, {}, {}, {"user": ("cfguser", ":2 remote_user"), "port": (2200, ":4 remote_port"), "key": ("/k/cfg", ":3"),
                  "become": (True, ":6 become"), "become_user": ("app", ":7"), "jump": ("cfgbastion", ":9")}),
    ({"ansible_user": "inv", "ansible_port": 22, "ansible_become": False, "ansible_ssh_common_args": "-o Port=1"},
     {}, {}, {"user": ("inv", "inventory ansible_user"), "port": (22, "inventory ansible_port"),
              "become": (False, "inventory ansible_become"), "jump": (None, None)}),
    ({"ansible_user": "inv"}, {"user": "cli"}, {}, {"user": ("cli", "command line -u")}),
    ({}, {}, {"ANSIBLE_REMOTE_USER": "envu", "ANSIBLE_BECOME": "false"},
     {"user": ("envu", "env ANSIBLE_REMOTE_USER"), "become": (False, "env ANSIBLE_BECOME")}),
    ({}, {"become": True}, {"ANSIBLE_BECOME": "false"}, {"become": (True, "command line -b")}),
    ({"ansible_private_key_file": "/k/a", "ansible_ssh_private_key_file": "/k/b"}, {}, {},
     {"key": ("/k/b", "inventory ansible_ssh_private_key_file")}),  # the last name set wins
])
def test_per_host_precedence_and_sources(tmp_path: Path, home: Path, vars: dict[str, object],
                                         cli: dict[str, object], env: dict[str, str],
                                         expect: dict[str, tuple[object, str | None]]) -> None:
    options = options_from(tmp_path, HOST_CFG, env, **cli)
    target = make_target("h", vars, options, origins={"ansible_user": "group web, hosts.yml:3"})
    values = {"user": target.user, "port": target.port, "key": target.key_file, "become": target.become,
              "become_user": target.become_user, "jump": dict(target.ssh_args).get("proxyjump", (None,))[0]}
    sources = dict(target.sources)
    for setting, (value, source) in expect.items():
        assert values[setting] == value, setting
        if source is not None:
            assert source in sources[setting], (setting, sources[setting])
    if "ansible_user" in vars and not cli:
        assert sources["user"] == "inventory ansible_user (group web, hosts.yml:3)"


def test_become_method_other_than_sudo_is_a_clear_error(tmp_path: Path, home: Path) -> None:
    options = options_from(tmp_path, "[privilege_escalation]\nbecome = true\nbecome_method = su\n")
    with pytest.raises(AnsibleConfigError, match=r"ansible.cfg:3 become_method: become_method 'su' is not supported"):
        make_target("h", {}, options)
    make_target("h", {"ansible_become": False}, options)  # not becoming: no matter
    with pytest.raises(InventoryVariableError, match="ansible_become_method"):
        make_target("h", {"ansible_become_method": "doas"}, options_from(tmp_path, "[defaults]\n", become=True))


def test_cwd_independence(tmp_path: Path, home: Path) -> None:
    """Nothing here reads the process's current directory: every call passed its own."""
    assert os.getcwd() != str(tmp_path / "proj")


def test_other_connection_settings_are_named_in_one_warning(tmp_path: Path, home: Path) -> None:
    proj = project(tmp_path, "[defaults]\nroles_path = roles\n[ssh_connection]\npipelining = True\nretries = 3\n"
                             "control_path = %(directory)s/%%h\n[privilege_escalation]\nbecome_flags = -H -S\n"
                             "become_ask_pass = true\n")
    cfg = load_ansible_config({}, str(proj))
    assert cfg.become_ask_pass is not None and cfg.become_ask_pass.value is True
    (warning,) = cfg.warnings
    assert "[ssh_connection] retries" in warning and ":5)" in warning and "[privilege_escalation] become_flags" in warning
    assert "pipelining" not in warning and "roles_path" not in warning and "control_path" not in warning
