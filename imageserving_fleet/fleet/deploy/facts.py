"""What a host says about itself before a deploy: one `python3 -c` run over the host's connection.

The probe is a short stdlib-only script; it prints one JSON object and changes nothing on the
host (it only creates the upload directory). `parse_facts` turns that output into `HostFacts`, or
raises ValueError with what was wrong, so a lying or broken host costs only itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# argv: venv (as the inventory gives it), upload dir (absolute). Runs as the installing user.
PROBE = r"""
import hashlib, json, os, platform, subprocess, sys, sysconfig
venv = os.path.abspath(os.path.expanduser(sys.argv[1]))
stage = sys.argv[2]
versions = os.path.join(os.path.dirname(venv), "venvs")
libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else ""
try:
    libc = libc or " ".join(platform.libc_ver())
except Exception:
    pass
kind = "link" if os.path.islink(venv) else "dir" if os.path.isdir(venv) else "other" if os.path.lexists(venv) else "missing"
facts = {"python": list(sys.version_info[:3]), "implementation": sys.implementation.name,
         "platform": sysconfig.get_platform(), "libc": (libc or "").strip(), "uid": os.getuid(),
         "venv": venv, "venv_kind": kind, "venv_target": None, "current": None, "agent": None, "agent_error": "",
         "versions_dir": versions, "versions": [], "in_use": [], "staged": {},
         "systemd": os.path.isdir("/run/systemd/system")}
if kind == "link":
    target = os.path.realpath(venv)
    facts["venv_target"] = target
    if os.path.dirname(target) == os.path.realpath(versions):
        facts["current"] = os.path.basename(target)
agent = os.path.join(venv, "bin", "imageserving")
if os.access(agent, os.X_OK):
    try:
        done = subprocess.run([agent, "--version"], capture_output=True, text=True, timeout=30)
        facts["agent"] = done.stdout.strip() if done.returncode == 0 else None
        said = done.stderr.strip().splitlines() or ["exit %d" % done.returncode]
        facts["agent_error"] = "" if done.returncode == 0 else said[-1][:200]
    except Exception as exc:
        facts["agent_error"] = "%s: %s" % (type(exc).__name__, exc)
if os.path.isdir(versions):
    facts["versions"] = sorted(os.listdir(versions))
    prefix = os.path.realpath(versions) + os.sep
    used = set()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                args = f.read().split(b"\0")[:2]
        except OSError:
            continue
        for arg in args:
            path = os.fsdecode(arg)
            if path.startswith(prefix):
                used.add(path[len(prefix):].split(os.sep, 1)[0])
    facts["in_use"] = sorted(used)
if os.path.isdir(stage):
    for key in os.listdir(stage):
        folder = os.path.join(stage, key)
        if len(key) != 64 or not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.endswith(".whl"):
                h = hashlib.sha256()
                try:
                    with open(os.path.join(folder, name), "rb") as f:
                        for block in iter(lambda: f.read(1 << 20), b""):
                            h.update(block)
                except OSError:
                    continue
                facts["staged"][key + "/" + name] = h.hexdigest()
print(json.dumps(facts))
"""


@dataclass(frozen=True)
class HostFacts:
    """A host's interpreter, platform and current deploy state, as its probe reported them."""

    python: tuple[int, int, int]
    implementation: str
    platform: str  # sysconfig.get_platform(), e.g. linux-x86_64
    libc: str  # "glibc 2.36", "" when unknown (musl)
    uid: int
    venv: str  # absolute, as the installing user resolves it
    venv_kind: str  # link | dir | other | missing
    venv_target: str | None  # where the link points (resolved)
    current: str | None  # the version directory it points to, when it is in versions_dir
    agent: str | None  # what `<venv>/bin/imageserving --version` printed, when it ran
    agent_error: str
    versions_dir: str
    versions: tuple[str, ...] = ()
    in_use: tuple[str, ...] = ()  # version directories some running process was started from
    staged: dict[str, str] = field(default_factory=dict)  # "<sha256>/<wheel name>" uploaded -> its actual sha256
    systemd: bool = False

    @property
    def libc_name(self) -> str:
        return "glibc" if self.libc.startswith("glibc") else ("musl" if not self.libc else self.libc.split()[0])

    @property
    def libc_version(self) -> str:
        parts = self.libc.split()
        return parts[1] if len(parts) > 1 else ""


def parse_facts(stdout: bytes) -> HostFacts:
    """Takes the probe's output; returns the facts or raises ValueError naming what is missing.

    Lines around the probe's JSON (what a login shell's startup files print) are ignored.
    """
    lines = [ln for ln in stdout.decode(errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise ValueError("the probe printed nothing")
    raw: Any = None
    # The last line that is a JSON object: a login shell may print before the probe and after it.
    for line in reversed(lines):
        if line.lstrip().startswith("{"):
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            break
    if raw is None:
        raise ValueError(f"the probe printed no JSON: {lines[-1][:80]!r}")
    if not isinstance(raw, dict):
        raise ValueError("the probe printed no JSON object")
    try:
        python = tuple(int(x) for x in raw["python"][:3])
        staged = {str(k): str(v) for k, v in dict(raw.get("staged") or {}).items()}
        return HostFacts(
            python=(python[0], python[1], python[2]),
            implementation=str(raw["implementation"]),
            platform=str(raw["platform"]),
            libc=str(raw.get("libc") or ""),
            uid=int(raw["uid"]),
            venv=str(raw["venv"]),
            venv_kind=str(raw["venv_kind"]),
            venv_target=str(raw["venv_target"]) if raw.get("venv_target") else None,
            current=str(raw["current"]) if raw.get("current") else None,
            agent=str(raw["agent"]) if raw.get("agent") else None,
            agent_error=str(raw.get("agent_error") or ""),
            versions_dir=str(raw["versions_dir"]),
            versions=tuple(str(v) for v in raw.get("versions") or ()),
            in_use=tuple(str(v) for v in raw.get("in_use") or ()),
            staged=staged,
            systemd=bool(raw.get("systemd")),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"the probe's JSON lacks or garbles {exc}") from None
