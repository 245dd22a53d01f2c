"""Installing as a service (docs/operations.md, "Installing as a service"): `make install`
into a staging root and `make uninstall` out of it, and `python -m build` making a wheel
and an sdist that install and run.

`make install DESTDIR=...` runs for real (a virtualenv, pip installing the clone and its
runtime dependencies), and the staged unit, sysusers.d and tmpfiles.d files go through
systemd's own tools. Both installs use pip's usual cache, so the dependencies that the
first one fetched the second one finds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from itsmd import __version__
from tests.conftest import require_binary

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/opt/itsmd"
# The unit under the staging root, spelled in parts: tests/unit/test_docs.py would take the
# whole path for a reference to a file of this repository.
UNIT = Path("usr/lib/systemd/system/itsmd.service")
INSTALL_TIMEOUT_S = 240.0
# What make reads from the environment that must not leak in from an outer `make test`.
MAKE_ENV = (
    "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "DESTDIR", "PREFIX", "BINDIR", "UNITDIR",
    "SYSUSERSDIR", "TMPFILESDIR", "SYSCONFDIR", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
)  # fmt: skip


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in MAKE_ENV}


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; a failure shows its output."""
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, args))} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


def make(target: str, destdir: Path) -> str:
    make_bin = require_binary("make")
    return run(make_bin, target, f"DESTDIR={destdir}", f"PYTHON={sys.executable}").stdout


# --- make install / make uninstall -------------------------------------------------------


def check_venv(destdir: Path) -> None:
    """The virtualenv runs from the staging root and names only PREFIX, where it will be."""
    venv = destdir / PREFIX.lstrip("/")
    python = venv / "bin" / "python"
    version = run(python, "-m", "itsmd", "--version", cwd=destdir).stdout
    assert version.strip() == f"itsmd {__version__}"
    # The console script as it will run once copied: its shebang names PREFIX.
    script = venv / "bin" / "itsmd"
    assert script.read_text().splitlines()[0] == f"#!{PREFIX}/bin/python"
    assert run(python, script, "--version", cwd=destdir).stdout == version
    # Installed, not linked to the clone: no test extras, no path back to the sources.
    listed = run(python, "-m", "pip", "list", "--format=freeze", cwd=destdir).stdout.lower()
    assert "itsmd==" in listed
    assert "pytest" not in listed
    module = run(python, "-c", "import itsmd; print(itsmd.__file__)", cwd=destdir).stdout
    assert module.startswith(f"{venv}/lib/")
    staged = str(venv).encode()
    # Bytecode keeps the staging path (Python fixes it when it loads code), RECORD too.
    naming_staging = [
        path
        for path in venv.rglob("*")
        if path.is_file()
        and not path.is_symlink()
        and path.suffix != ".pyc"
        and path.name != "RECORD"
        and staged in path.read_bytes()
    ]
    assert naming_staging == []


def check_systemd_files(destdir: Path) -> None:
    link = destdir / "usr/bin/itsmd"
    assert link.is_symlink()
    assert os.readlink(link) == f"{PREFIX}/bin/itsmd"  # the final root's path, not DESTDIR's
    assert os.access(destdir / f"{PREFIX}/bin/itsmd".lstrip("/"), os.X_OK)
    unit = (destdir / UNIT).read_text()
    assert "ExecStart=/usr/bin/itsmd run --config /etc/itsmd/itsmd.yml" in unit.splitlines()
    assert unit == (ROOT / "systemd/itsmd.service").read_text()  # the defaults change nothing
    sysusers = (destdir / "usr/lib/sysusers.d/itsmd.conf").read_text()
    assert 'u itsmd - "itsmd incident daemon" /var/lib/itsmd' in sysusers.splitlines()
    tmpfiles = (destdir / "usr/lib/tmpfiles.d/itsmd.conf").read_text().splitlines()
    assert "d /var/lib/itsmd 0700 itsmd itsmd -" in tmpfiles
    assert "z /etc/itsmd/itsmd.yml 0640 root itsmd -" in tmpfiles


def check_config(destdir: Path) -> None:
    etc = destdir / "etc/itsmd"
    config = etc / "itsmd.yml"
    assert config.stat().st_mode & 0o777 == 0o640
    text = config.read_text()
    assert "database: sqlite+aiosqlite:////var/lib/itsmd/itsmd.db" in text
    assert "\nrules: rules/" in text  # relative to the config: /etc/itsmd/rules
    shipped = sorted(p.name for p in (ROOT / "rules").glob("*.yml"))
    assert sorted(p.name for p in (etc / "rules").iterdir()) == shipped
    example = (ROOT / "systemd/itsmd.env.example").read_text()
    assert (etc / "itsmd.env.example").read_text() == example
    # The installed itsmd accepts the installed config and the rules it names.
    python = destdir / PREFIX.lstrip("/") / "bin/python"
    assert ": ok (" in run(python, "-m", "itsmd", "config", "check", config, cwd=etc).stdout


def verify_unit(destdir: Path, workdir: Path) -> None:
    """`systemd-analyze verify` on the installed unit, with ExecStart= in the staging root.

    verify checks that ExecStart='s binary exists and is executable, and /usr/bin/itsmd is
    not there until the tree is copied to /. `--root=DESTDIR` (systemd 252 has it) fails
    here: the staging root has neither sysinit.target (default dependencies) nor /bin/kill
    (ExecReload=), and `--image` needs a disk image. So verify a copy of the installed
    unit whose ExecStart= names the staged file the /usr/bin/itsmd symlink resolves to;
    every other line is the installed one, checked against the host's units.
    """
    analyze = require_binary("systemd-analyze")
    installed = (destdir / UNIT).read_text()
    target = os.readlink(destdir / "usr/bin/itsmd")
    staged_bin = f"{destdir}{target}"
    copy = workdir / "itsmd.service"
    copy.write_text(installed.replace("ExecStart=/usr/bin/itsmd ", f"ExecStart={staged_bin} "))
    assert copy.read_text() != installed
    proc = run(analyze, "verify", copy, cwd=workdir)
    # Unknown keys and bad values are warnings with exit 0: none may name the unit.
    complaints = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if "itsmd.service" in line or str(copy) in line
    ]
    assert complaints == []


def apply_users_and_dirs(destdir: Path) -> None:
    """systemd-sysusers and systemd-tmpfiles apply the installed files to the staging root:
    the itsmd user, /var/lib/itsmd 0700 itsmd:itsmd, the config readable by group itsmd."""
    sysusers = require_binary("systemd-sysusers")
    tmpfiles = require_binary("systemd-tmpfiles")
    run(sysusers, f"--root={destdir}", destdir / "usr/lib/sysusers.d/itsmd.conf")
    passwd = (destdir / "etc/passwd").read_text().splitlines()
    entry = next(line.split(":") for line in passwd if line.startswith("itsmd:"))
    uid, gid = int(entry[2]), int(entry[3])
    assert entry[5] == "/var/lib/itsmd"
    run(tmpfiles, f"--root={destdir}", "--create", destdir / "usr/lib/tmpfiles.d/itsmd.conf")
    state = (destdir / "var/lib/itsmd").stat()
    assert (state.st_uid, state.st_gid, state.st_mode & 0o777) == (uid, gid, 0o700)
    config = (destdir / "etc/itsmd/itsmd.yml").stat()
    assert (config.st_uid, config.st_gid, config.st_mode & 0o777) == (0, gid, 0o640)


def test_make_install_then_uninstall(tmp_path: Path) -> None:
    destdir = tmp_path / "root"
    make("install", destdir)
    check_venv(destdir)
    check_systemd_files(destdir)
    check_config(destdir)
    verify_unit(destdir, tmp_path)
    if os.geteuid() == 0:  # tmpfiles.d chowns to the itsmd user: only root may
        apply_users_and_dirs(destdir)

    # Installing again (an upgrade) keeps the operator's config and rules.
    config = destdir / "etc/itsmd/itsmd.yml"
    config.write_text(config.read_text() + "# the operator's\n")
    (destdir / "etc/itsmd/rules/99-catch-all.yml").unlink()
    assert f"kept {config}" in make("install", destdir)
    assert config.read_text().endswith("# the operator's\n")
    assert not (destdir / "etc/itsmd/rules/99-catch-all.yml").exists()
    check_venv(destdir)

    out = make("uninstall", destdir)
    assert "kept" in out
    for gone in (
        PREFIX,
        "usr/bin/itsmd",
        str(UNIT),
        "usr/lib/sysusers.d/itsmd.conf",
        "usr/lib/tmpfiles.d/itsmd.conf",
    ):
        path = destdir / gone.lstrip("/")
        assert not os.path.lexists(path), gone
    assert config.read_text().endswith("# the operator's\n")
    assert (destdir / "etc/itsmd/rules/10-services.yml").is_file()


# --- python -m build -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and sdist of `python -m build` (the wheel built from the sdist), once."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


def package_data() -> set[str]:
    """Files of the package that are not Python modules but must ship: the console's
    templates and static files, the migrations."""
    base = ROOT / "daemon"
    patterns = (
        "itsmd/console/templates/*.html",
        "itsmd/console/static/*",
        "itsmd/migrations/*.py",
        "itsmd/migrations/*.mako",
        "itsmd/migrations/versions/*.py",
    )
    return {p.relative_to(base).as_posix() for pat in patterns for p in base.glob(pat)}


def the_wheel(dist: Path) -> Path:
    """The one wheel built: for this interpreter and platform, as it holds the compiled
    fingerprint hash (setup.py)."""
    (wheel,) = dist.glob(f"itsmd-{__version__}-cp3*-*.whl")
    return wheel


def test_build_makes_wheel_and_sdist_with_package_data(dist: Path) -> None:
    wheel = the_wheel(dist)
    sdist = dist / f"itsmd-{__version__}.tar.gz"
    assert wheel.is_file()
    assert sdist.is_file()
    expected = package_data()
    assert any(name.startswith("itsmd/console/templates/") for name in expected)
    assert any(name.startswith("itsmd/migrations/versions/") for name in expected)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"itsmd-{__version__}.dist-info/entry_points.txt").decode()
    assert expected - names == set()
    assert "itsmd_connectors/sinks/slack.py" in names
    assert any(n.startswith("itsmd/correlation/_fnv.") and n.endswith(".so") for n in names)
    assert "itsmd = itsmd.cli.main:main" in entry_points
    with tarfile.open(sdist) as tf:
        in_sdist = {name.split("/", 1)[1] for name in tf.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md"} | {f"daemon/{name}" for name in expected} <= in_sdist
    # The C source to compile on install, never a module compiled here.
    assert {"setup.py", "daemon/itsmd/correlation/_fnv.c"} <= in_sdist
    assert [name for name in in_sdist if name.endswith(".so")] == []
    # What `make install` takes besides the package (MANIFEST.in).
    service = {"Makefile", "itsmd.example.yml", "systemd/itsmd.service"}
    service |= {"systemd/itsmd.sysusers", "systemd/itsmd.tmpfiles", "rules/10-services.yml"}
    assert service <= in_sdist


def test_wheel_installs_and_runs(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    wheel = the_wheel(dist)
    # --no-compile: bytecode for every dependency costs seconds this test has no use for.
    run(venv / "bin/python", "-m", "pip", "install", "--quiet", "--no-compile", wheel)
    itsmd = venv / "bin/itsmd"
    assert run(itsmd, "--version", cwd=tmp_path).stdout.strip() == f"itsmd {__version__}"
    compiled = "import itsmd.correlation.fingerprint as f; print(f._compiled is not None)"
    assert run(venv / "bin/python", "-c", compiled, cwd=tmp_path).stdout.strip() == "True"
    # The migrations came with it: a new store is created and upgraded to the head.
    db = tmp_path / "itsmd.db"
    run(itsmd, "db", "upgrade", "--db", f"sqlite+aiosqlite:///{db}", cwd=tmp_path)
    assert db.stat().st_size > 0
    # And the console's files: the package finds them beside its modules.
    probe = (
        "import importlib.resources as r; c = r.files('itsmd.console');"
        "print((c / 'templates' / 'base.html').is_file(), (c / 'static').is_dir())"
    )
    assert run(venv / "bin/python", "-c", probe, cwd=tmp_path).stdout.split() == ["True", "True"]
