"""Controller side: the wheels a host needs, built or downloaded once and cached between runs.

    project_wheel()              this project's wheel, rebuilt only when its source changes
    Platform.from_facts(...)     what a host reported -> the tags pip must match for it
    collect(project, platform)   the agent's dependencies (and pip, the installer) for that platform
    Bundle                       all of it for one platform; `build_id` names what gets installed

Cache (`$IMAGESERVING_FLEET_CACHE`, else `$XDG_CACHE_HOME/imageserving-fleet`, else
`~/.cache/imageserving-fleet`):

    project/<source sha>/imageserving_fleet-<version>-py3-none-any.whl
    wheelhouse/<cp311-manylinux_2_36_x86_64>/<requirements sha>/*.whl

A directory there is complete or absent: it is filled under a temporary name and renamed. The same
source and requirements therefore give the same files, the same hashes and the same `build_id`
from one run to the next, which is what makes a second deploy a no-op. Only the agent's own
requirements (the `agent` extra) are collected, and the host installs exactly those wheels
(--no-deps): the controller's paramiko, jinja2 and rich stay on the controller.
"""

from __future__ import annotations

import email.parser
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ImageServingError

CACHE_ENV = "IMAGESERVING_FLEET_CACHE"
PROJECT = "imageserving-fleet"
PACKAGE = "imageserving_fleet"
INSTALLER = "pip"  # run from its own wheel on the host, so the venv needs no ensurepip
PIP_TIMEOUT = 900.0
# Source files a build reads besides the package: pyproject names README.md as the readme.
_BUILD_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "LICENSE.txt")
_EXTRA_MARKER = re.compile(r"""\bextra\s*==""")
_AGENT_EXTRA = re.compile(r"""^\s*extra\s*==\s*["']agent["']\s*$""")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class WheelhouseError(ImageServingError):
    """The controller could not build or collect the wheels (pip's reason in the message)."""


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "imageserving-fleet"


@dataclass(frozen=True)
class Wheel:
    """One wheel file and the sha256 of its bytes (what the host's copy is compared with)."""

    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def of(cls, path: Path) -> Wheel:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return cls(path, digest.hexdigest())


@dataclass(frozen=True)
class ProjectWheel:
    """This project's wheel and what its metadata says the agent needs."""

    wheel: Wheel
    version: str
    requires: tuple[str, ...]  # the `agent` extra's Requires-Dist: what every host needs
    requires_python: str | None


@dataclass(frozen=True)
class Platform:
    """A host's interpreter and platform, as far as choosing wheels goes."""

    python: tuple[int, int]
    implementation: str  # "cp"
    arch: str  # "x86_64", "aarch64"...
    libc: str  # "glibc" | "musl"
    libc_version: tuple[int, int]

    @classmethod
    def from_facts(cls, python: Iterable[int], implementation: str, platform: str, libc: str,
                   libc_version: str) -> Platform:
        """Takes what the probe reported (sys.version_info, sysconfig.get_platform(), the libc).

        Raises ValueError for what has no binary wheels here (not Linux, not CPython).
        """
        major, minor = list(python)[:2]
        if implementation != "cpython":
            raise ValueError(f"python3 is {implementation}; only CPython hosts are supported")
        if not platform.startswith("linux-"):
            raise ValueError(f"platform {platform!r} is not Linux")
        arch = re.sub(r"[^A-Za-z0-9_]", "_", platform.removeprefix("linux-"))
        kind = "musl" if libc == "musl" else "glibc"
        parts = re.findall(r"\d+", libc_version or "")
        if len(parts) < 2:
            # No version: the oldest glibc manylinux still covers; musl 1.1 likewise.
            parts = ["1", "1"] if kind == "musl" else ["2", "17"]
        return cls((int(major), int(minor)), "cp", arch, kind, (int(parts[0]), int(parts[1])))

    @property
    def key(self) -> str:
        """Directory name in the wheelhouse, e.g. cp311-manylinux_2_36_x86_64."""
        family = "manylinux" if self.libc == "glibc" else "musllinux"
        major, minor = self.libc_version
        return f"{self.implementation}{self.python[0]}{self.python[1]}-{family}_{major}_{minor}_{self.arch}"

    def platform_tags(self) -> list[str]:
        """Every platform tag the host accepts, newest first (pip does not expand manylinux_2_X)."""
        major, minor = self.libc_version
        if self.libc == "musl":
            return [f"musllinux_{major}_{m}_{self.arch}" for m in range(minor, 0, -1)]
        floor = 5 if self.arch in ("x86_64", "i686") else 17
        tags = [f"manylinux_2_{m}_{self.arch}" for m in range(minor, floor - 1, -1)] if major == 2 else []
        for legacy, needs in (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5)):
            if major == 2 and minor >= needs and (legacy == "manylinux2014" or self.arch in ("x86_64", "i686")):
                tags.append(f"{legacy}_{self.arch}")
        return tags

    def pip_download_args(self) -> list[str]:
        abi = f"{self.implementation}{self.python[0]}{self.python[1]}"
        args = ["--only-binary=:all:", "--python-version", f"{self.python[0]}.{self.python[1]}",
                "--implementation", self.implementation, "--abi", abi]
        for tag in self.platform_tags():
            args += ["--platform", tag]
        return args


@dataclass(frozen=True)
class Bundle:
    """Everything one platform's hosts get: the agent's wheels and the installer's."""

    project: ProjectWheel
    deps: tuple[Wheel, ...]
    installer: Wheel

    @property
    def version(self) -> str:
        return self.project.version

    @property
    def agent_wheels(self) -> tuple[Wheel, ...]:
        return (self.project.wheel, *self.deps)

    @property
    def wheels(self) -> tuple[Wheel, ...]:
        return (*self.agent_wheels, self.installer)

    @property
    def build_id(self) -> str:
        """12 hex digits naming exactly these agent wheels (same files, same id, every run)."""
        text = "".join(f"{w.name} {w.sha256}\n" for w in sorted(self.agent_wheels, key=lambda w: w.name))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# ----------------------------------------------------------------- the project's wheel
def source_tree() -> Path | None:
    """The checkout this package runs from (editable install, CI), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[3]
    pyproject = root / "pyproject.toml"
    if (root / PACKAGE).is_dir() and pyproject.is_file() and f'name = "{PROJECT}"' in pyproject.read_text():
        return root
    return None


def _package_files(root: Path) -> list[Path]:
    """The package's files under `root`, sorted, without bytecode caches."""
    found = []
    for path in sorted((root / PACKAGE).rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix not in (".pyc", ".pyo"):
            found.append(rel)
    return found


def _source_key(root: Path) -> str:
    digest = hashlib.sha256()
    for rel in [Path(n) for n in _BUILD_FILES if (root / n).is_file()] + _package_files(root):
        digest.update(str(rel).encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def project_wheel(cache: Path | None = None, *, run: Runner = subprocess.run) -> ProjectWheel:
    """This project's wheel from the cache, else built (from the checkout, or repacked if installed).

    Raises WheelhouseError with pip's reason when the build fails.
    """
    cache = cache or cache_dir()
    root = source_tree()
    key = _source_key(root) if root else "installed-" + _installed_key()
    dest = cache / "project" / key
    if not _complete(dest):
        tmp = _fresh(dest)
        try:
            if root is not None:
                _build_from_source(root, tmp, run)
            else:
                _repack_installed(tmp)
            _publish(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise WheelhouseError(f"{dest}: expected one wheel, found {len(wheels)}")
    return read_project(wheels[0])


def _build_from_source(root: Path, out: Path, run: Runner) -> None:
    # A copy, so setuptools' build/ and egg-info never land in a working tree someone is editing.
    with tempfile.TemporaryDirectory(prefix="imageserving-build-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in _BUILD_FILES:
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        for rel in _package_files(root):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, src / rel)
        base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out)]
        # Without isolation and index first: nothing to download when the controller has setuptools.
        first = _pip(run, [*base, "--no-build-isolation", "--no-index", str(src)])
        if first.returncode == 0 and list(out.glob("*.whl")):
            return
        second = _pip(run, [*base, str(src)])
        if second.returncode != 0 or not list(out.glob("*.whl")):
            raise WheelhouseError(f"cannot build the {PROJECT} wheel: {_pip_reason(second.stderr or first.stderr)}")


def _installed_key() -> str:
    from importlib.metadata import distribution

    dist = distribution(PROJECT)
    digest = hashlib.sha256()
    for item in sorted(dist.files or [], key=str):
        path = Path(str(item.locate()))
        if path.is_file() and "__pycache__" not in item.parts:
            digest.update(str(item).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _repack_installed(out: Path) -> None:
    """A wheel rebuilt from the installed distribution's files (the controller has no checkout)."""
    import base64
    from importlib.metadata import distribution

    dist = distribution(PROJECT)
    version = dist.version
    info = f"{PACKAGE}-{version}.dist-info"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    members: list[tuple[str, bytes]] = []
    for item in sorted(dist.files or [], key=str):
        name = str(item).replace(os.sep, "/")
        top = name.split("/", 1)[0]
        if "__pycache__" in item.parts or (top != PACKAGE and top != info) or item.name in skip:
            continue
        members.append((name, Path(str(item.locate())).read_bytes()))
    if not any(n == f"{info}/WHEEL" for n, _ in members):
        members.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: imageserving-fleet\n"
                                         b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    record = []
    for name, data in members:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    members.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    with zipfile.ZipFile(out / f"{PACKAGE}-{version}-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as whl:
        for name, data in members:
            whl.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def given_wheel(path: str) -> ProjectWheel:
    """A wheel the operator names (--wheel); raises WheelhouseError unless it is this project's."""
    wheel = Path(path).expanduser()
    if not wheel.is_file() or not wheel.name.startswith(f"{PACKAGE}-") or not wheel.name.endswith(".whl"):
        raise WheelhouseError(f"--wheel {path}: not an existing {PACKAGE}-<version>-….whl file")
    try:
        return read_project(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WheelhouseError(f"--wheel {path}: {exc}") from None


def read_project(path: Path) -> ProjectWheel:
    """Takes this project's wheel; returns it with its version and the agent's requirements."""
    with zipfile.ZipFile(path) as whl:
        meta_name = next((n for n in whl.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta_name is None:
            raise WheelhouseError(f"{path}: no METADATA in the wheel")
        meta = email.parser.Parser().parsestr(whl.read(meta_name).decode())
    return ProjectWheel(Wheel.of(path), str(meta["Version"]), agent_requirements(meta.get_all("Requires-Dist") or []),
                        meta.get("Requires-Python"))


def agent_requirements(requires_dist: Iterable[str]) -> tuple[str, ...]:
    """The `agent` extra's requirements, without the marker; a wheel from before that extra: the plain ones."""
    agent, plain = [], []
    for line in requires_dist:
        spec, _, marker = (part.strip() for part in line.partition(";"))
        if _AGENT_EXTRA.match(marker):
            agent.append(spec)
        elif not _EXTRA_MARKER.search(marker):
            plain.append(spec)
    return tuple(agent or plain)


# -------------------------------------------------------------- the dependencies
def collect(project: ProjectWheel, platform: Platform, cache: Path | None = None, *,
            run: Runner = subprocess.run) -> Bundle:
    """The agent's dependency wheels and pip's for one platform, from the cache or from the index.

    Raises WheelhouseError with pip's reason (no wheel for that platform, no network...).
    """
    cache = cache or cache_dir()
    requirements = sorted(project.requires) + [INSTALLER]
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    dest = cache / "wheelhouse" / platform.key / key
    if not _complete(dest):
        tmp = _fresh(dest)
        try:
            done = _pip(run, [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                              *platform.pip_download_args(), "-d", str(tmp), *requirements])
            if done.returncode != 0:
                raise WheelhouseError(f"cannot collect wheels for {platform.key}: {_pip_reason(done.stderr)}")
            _publish(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    wheels = [Wheel.of(p) for p in sorted(dest.glob("*.whl"))]
    installer = [w for w in wheels if _dist_name(w.name) == INSTALLER]
    if len(installer) != 1:
        raise WheelhouseError(f"{dest}: expected one {INSTALLER} wheel, found {len(installer)}")
    deps = tuple(w for w in wheels if _dist_name(w.name) not in (INSTALLER, PACKAGE))
    return Bundle(project, deps, installer[0])


def _dist_name(filename: str) -> str:
    return filename.split("-", 1)[0].lower().replace("-", "_").replace(".", "_")


def _pip(run: Runner, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        return run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise WheelhouseError(f"pip took more than {PIP_TIMEOUT:g}s: {' '.join(argv[3:5])}") from None
    except OSError as exc:
        raise WheelhouseError(f"cannot run pip: {exc}") from None


def _pip_reason(stderr: Any) -> str:
    lines = [ln.strip() for ln in str(stderr or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return ((errors or lines or ["pip failed without a message"])[0])[:300]


def _complete(dest: Path) -> bool:
    return dest.is_dir() and any(dest.glob("*.whl"))


def _fresh(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))


def _publish(tmp: Path, dest: Path) -> None:
    """Renames a filled directory into place; a concurrent run that got there first wins."""
    try:
        os.rename(tmp, dest)
    except OSError:
        if not _complete(dest):
            raise
