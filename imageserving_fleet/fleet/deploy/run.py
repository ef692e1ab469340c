"""A deploy over one fleet run's connections: probe every host, collect wheels per platform, install.

The fan-out, the per-host deadline and Ctrl-C handling are runner.Fleet's: each phase is one
`Fleet.run` whose job is a deploy step instead of an agent command, over the run's connections,
so a host is connected to once for the probe, the uploads and the install.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from ...errors import HostError, InventoryError
from ..fanout import Interrupted
from ..jobs import Step, step_job
from ..remote import AGENT_MISSING_EXIT
from ..results import Deployed, HostResult, Result
from ..runner import Fleet
from ..ssh import Session
from ..target import Target
from . import install
from .activate import activate
from .facts import HostFacts, parse_facts
from .plan import Action, DeployRequest, Refused, WheelSet, plan_host, render_unit
from .transfer import TransferFailed
from .wheelhouse import Bundle, Platform, ProjectWheel, WheelhouseError, collect

PYTHON_VARS = ("imageserving_python", "ansible_python_interpreter")
DEFAULT_PYTHON = "python3"


@dataclass(frozen=True)
class DeployJob:
    """What to deploy and how: the project's wheel, the request, each host's interpreter."""

    project: ProjectWheel
    request: DeployRequest = DeployRequest()
    pythons: Mapping[str, str] = field(default_factory=dict)  # host -> interpreter; default python3
    cache: Path | None = None

    def python(self, host: str) -> str:
        return self.pythons.get(host) or DEFAULT_PYTHON


def interpreters(hosts: Sequence[tuple[str, Mapping[str, object]]]) -> dict[str, str]:
    """Takes (host, variables); returns the hosts whose inventory names their python3.

    `imageserving_python`, else Ansible's `ansible_python_interpreter` (its `auto*` values mean
    python3). Raises InventoryError (exit 1, as any bad inventory) for a value that is not a plain
    path or command name.
    """
    found: dict[str, str] = {}
    for name, hv in hosts:
        for key in PYTHON_VARS:
            value = hv.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip() or any(c in value for c in "\0\n\r"):
                raise InventoryError(f"host {name}: {key}: expected a path to python3, got {value!r}")
            if value.strip().startswith("auto"):
                break
            found[name] = value.strip()
            break
    return found


def deploy(fleet: Fleet, targets: Sequence[Target], job: DeployJob,
           on_result: Callable[[HostResult], None] | None = None) -> list[HostResult]:
    """Deploys the job's agent to every target; returns one result per target, in their order.

    Raises Interrupted (with the partial results) on Ctrl-C.
    """
    facts: dict[str, HostFacts] = {}
    started: dict[str, float] = {}

    def probe(target: Target, session: Session, deadline: float, stdin: bytes | None) -> HostResult:
        python = job.python(target.name)
        out = session.run(install.probe_command(target, python, password=stdin is not None), stdin=stdin,
                          timeout=max(0.01, deadline - time.monotonic()))
        if out.exit_code == AGENT_MISSING_EXIT:  # sh: command not found
            return HostResult(target.name, Result.FAILED, f"{python} not found on the host (set imageserving_python "
                                                           "or ansible_python_interpreter)")
        if out.exit_code != 0:
            raise install.StepFailed(target.name, "probe", install.why(out))
        try:
            facts[target.name] = parse_facts(out.stdout)
        except ValueError as exc:
            raise install.StepFailed(target.name, "probe", str(exc)) from None
        return HostResult(target.name, Result.OK)

    def not_installed(partial: Sequence[HostResult]) -> Interrupted:
        """Ctrl-C before the install phase: a probed host was not changed, so it is not `ok`."""
        return Interrupted([HostResult(r.host, Result.SKIPPED, "probed, then interrupted before install")
                            if r.result == Result.OK else r for r in partial])

    try:
        results = {r.host: r for r in _run_phase(fleet, probe, targets, {}, None)}
    except Interrupted as exc:
        raise not_installed(exc.results) from None
    for res in results.values():
        if res.result != Result.OK and on_result:
            on_result(res)
        started[res.host] = res.elapsed_s

    try:
        bundles, platform_of = _collect_bundles(job, [t for t in targets if t.name in facts], facts, results)
    except KeyboardInterrupt:  # pip download can take a while: the partial report still matters
        raise not_installed([results[t.name] for t in targets]) from None
    ready = [t for t in targets if t.name in platform_of]
    for t in targets:
        if t.name not in platform_of and results[t.name].result == Result.OK:
            results[t.name] = HostResult(t.name, Result.FAILED, "no wheels for this host", elapsed_s=started[t.name])

    def install_one(target: Target, session: Session, deadline: float, stdin: bytes | None) -> HostResult:
        bundle = bundles[platform_of[target.name]]
        if isinstance(bundle, str):
            return HostResult(target.name, Result.FAILED, bundle)
        res = _install(target, session, deadline, stdin, facts[target.name], bundle, job)
        return replace(res, elapsed_s=started.get(target.name, 0.0))

    second = _run_phase(fleet, install_one, ready, results, on_result)
    results.update({r.host: r for r in second})
    return [results[t.name] for t in targets]


def _run_phase(fleet: Fleet, step: Step, targets: Sequence[Target], earlier: Mapping[str, HostResult],
               on_result: Callable[[HostResult], None] | None) -> list[HostResult]:
    """One step on every target over the fleet's connections; `on_result` hears of each host."""
    if not targets:
        return []
    counted, fleet.on_result = fleet.on_result, on_result
    try:
        return fleet.run(targets, step_job(_refusals_failed(step)))
    except Interrupted as exc:
        done = {r.host: r for r in exc.results}
        merged = {**earlier, **done}
        raise Interrupted(list(merged.values())) from None
    finally:
        fleet.on_result = counted


def _refusals_failed(step: Step) -> Step:
    """The step, with a plan's refusal (it names no host: not a HostError) as the host's failure."""
    def guarded(target: Target, session: Session, deadline: float, stdin: bytes | None) -> HostResult:
        try:
            return step(target, session, deadline, stdin)
        except Refused as exc:
            return HostResult(target.name, Result.FAILED, str(exc))
    return guarded


def _collect_bundles(job: DeployJob, targets: Sequence[Target], facts: Mapping[str, HostFacts],
                     results: dict[str, HostResult]) -> tuple[dict[str, Bundle | str], dict[str, str]]:
    """One wheel bundle per distinct platform among the hosts (or the reason there is none)."""
    bundles: dict[str, Bundle | str] = {}
    platform_of: dict[str, str] = {}
    for target in targets:
        f = facts[target.name]
        try:
            platform = Platform.from_facts(f.python, f.implementation, f.platform, f.libc_name, f.libc_version)
        except ValueError as exc:
            results[target.name] = HostResult(target.name, Result.FAILED, str(exc))
            continue
        platform_of[target.name] = platform.key
        if platform.key not in bundles:
            try:
                bundles[platform.key] = collect(job.project, platform, job.cache)
            except WheelhouseError as exc:
                bundles[platform.key] = str(exc)
            except (OSError, zipfile.BadZipFile) as exc:  # an unusable wheel cache on the controller
                bundles[platform.key] = f"wheel cache: {exc}"
    return bundles, platform_of


def _install(target: Target, session: Session, deadline: float, stdin: bytes | None, facts: HostFacts,
             bundle: Bundle, job: DeployJob) -> HostResult:
    offer = WheelSet(bundle.version, bundle.build_id, {w.name: w.sha256 for w in bundle.wheels},
                     job.project.requires_python)
    plan = plan_host(facts, offer, job.request)
    unit = None
    if plan.systemd:
        template = resources.files("imageserving_fleet.agent").joinpath("imageserving.service").read_text()
        unit = (f"imageserving.service.{bundle.build_id}", render_unit(template, plan.agent, target.home, target.config))
    try:
        parts, sent = install.upload(session, bundle, plan.uploads, deadline, python=job.python(target.name), unit=unit)
    except TransferFailed as exc:
        raise TransferFailed(target.name, exc.reason, f"{exc.detail}; the agent there before is unchanged") from None
    password = stdin is not None
    steps = install.install_steps(target, plan, bundle, job.python(target.name), parts=parts,
                                  unit_file=unit[0] if unit else None,
                                  password=password)
    switched = plan.action == Action.UNCHANGED
    try:
        for step in steps:
            install.run_step(session, step, deadline, stdin)
            switched = switched or step.name == "switch"
    except install.StepFailed as exc:
        if not switched:
            _quietly(session, install.cleanup_command(target, plan, password), deadline, stdin)
            raise install.StepFailed(target.name, exc.reason, f"{exc.detail}; the agent there before is unchanged"
                                     ) from None
        raise
    deployed = Deployed(action=str(plan.action), version=plan.version, imageserving_command=plan.agent,
                        venv=plan.version_dir, uploaded=len(plan.uploads),
                        transfer=str(sent.method) if sent else None,
                        sftp_error=sent.sftp_error if sent else None, systemd=plan.systemd)
    if plan.action == Action.INSTALL and job.request.activate:
        done = activate(session, target, deadline, stdin)
        deployed = replace(deployed, activated=done.activated, supervisor_pid=done.pid)
        if not done.ok:
            return HostResult(target.name, Result.DEGRADED, f"installed; restart supervisor failed: {done.detail}",
                              deployed=deployed)
    note = ""
    if target.agent_command and target.agent_command not in (plan.agent, target.venv.rstrip("/") + "/bin/imageserving"):
        note = (f"imageserving_command is set to {target.agent_command} for this host: commands run that, not "
                "the agent deployed here")
    return HostResult(target.name, Result.OK, note, deployed=deployed)


def _quietly(session: Session, command: str, deadline: float, stdin: bytes | None) -> None:
    """A best-effort cleanup: a failure here must not hide the failure that led to it."""
    try:
        session.run(command, stdin=stdin, timeout=max(0.01, min(30.0, deadline - time.monotonic())))
    except HostError:
        pass
