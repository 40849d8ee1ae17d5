"""The wheel is the product: what `pip wheel .` builds and `pip install` installs.

It holds every module of the ``controller`` package, the dashboard's static files and the
entry points, and nothing of the test harness, the tests or the benchmarks. Installed on
its own, every module imports without the repository or a dev-only library, and
`rolloutctl sandbox` (a repository tool) says in one line what it needs instead of failing
with a traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[2]
DEV_ONLY = ("tests", "bench", "pytest", "_pytest", "hypothesis", "aiosmtpd", "playwright")
# Parts of a path that only test machinery has (spelt out so no rewrite of imports edits them)
TEST_PARTS = {"tests", "bench", "harness", "test" + "ing", "conftest.py"}


def source_tree(dest: Path) -> Path:
    """A copy of the source tree as a fresh clone has it (tracked and new files, nothing
    ignored): setuptools packs whatever an earlier build left in build/lib into the next
    wheel, so the wheel is built from a clean copy, never in place."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, timeout=60, check=False)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.decode().split("\0")):
            source = REPO / name
            if source.is_file() and not source.is_symlink():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)
        return dest
    ignored = shutil.ignore_patterns(".git", ".venv", ".k8s-bin", ".cache", ".sandbox", "build",
                                     "dist", "*.egg-info", "__pycache__", ".*_cache",
                                     ".hypothesis")
    shutil.copytree(REPO, dest, ignore=ignored, dirs_exist_ok=True)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("wheel")
    src = source_tree(work / "src")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(work / "out")],
        cwd=src, capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = (work / "out").glob("rolloutctl-*.whl")
    yield path


def test_the_wheel_holds_every_product_module_and_its_data_and_nothing_else(
        wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    product = {p.relative_to(REPO).as_posix() for p in (REPO / "controller").rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == product
    static = {p.relative_to(REPO).as_posix()
              for p in (REPO / "controller" / "dashboard" / "static").iterdir()}
    assert static and static <= set(names)
    assert "controller/py.typed" in names
    dist_info = {n.split("/")[0] for n in names} - {"controller"}
    assert len(dist_info) == 1 and dist_info.pop().endswith(".dist-info")
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "rolloutctl = controller.cli.main:main" in scripts
    machinery = [n for n in names if TEST_PARTS & set(PurePosixPath(n).parts)
                 or PurePosixPath(n).name.startswith("test_")]
    assert machinery == []


def test_the_check_sees_a_harness_module(tmp_path: Path) -> None:
    # the listing above must be able to fail: a harness module is test machinery
    for name in ("tests/harness/cluster.py", "controller/" + "test" + "ing/fakes.py",
                 "controller/test_x.py"):
        parts = PurePosixPath(name)
        assert TEST_PARTS & set(parts.parts) or parts.name.startswith("test_")


INSTALLED = textwrap.dedent("""
    import importlib, importlib.abc, pkgutil, sys

    class NoDevLibraries(importlib.abc.MetaPathFinder):
        # the installed product without the repository or the dev extra
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in DEV_ONLY:
                raise ImportError(f"{name} is not installed (dev only)")
            return None

    sys.meta_path.insert(0, NoDevLibraries())
    import controller
    assert controller.__file__.startswith(TARGET), controller.__file__
    if sys.argv[1:] == ["version"]:  # once is enough: every module of the wheel
        for module in pkgutil.walk_packages(controller.__path__, "controller."):
            importlib.import_module(module.name)
    sys.argv = ["rolloutctl", *sys.argv[1:]]
    from controller.cli.main import main
    main()
""")


def test_installed_alone_every_module_imports_and_the_sandbox_says_where_it_lives(
        wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=120, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # -S: no site-packages processing, so the editable install of the repository is not
    # seen; the dependencies come from this environment's site-packages, after the wheel.
    deps = sysconfig.get_paths()["purelib"]
    script = INSTALLED.replace("DEV_ONLY", repr(DEV_ONLY)).replace("TARGET", repr(str(target)))
    env = {"PYTHONPATH": f"{target}:{deps}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def rolloutctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-S", "-c", script, *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    version = rolloutctl("version")
    assert version.returncode == 0 and version.stdout.startswith("rolloutctl "), (
        version.stdout + version.stderr)
    for args in (["sandbox", "demo", "--dir", "x", "--keep"], ["sandbox"]):
        result = rolloutctl(*args)
        out = result.stdout + result.stderr
        assert result.returncode == 2, out
        assert "Traceback" not in out
        assert result.stderr.startswith("error: the sandbox is a development tool of the "
                                        "rolloutctl repository"), out
        assert "make demo" in result.stderr and "scripts/sandbox" in result.stderr
    assert "sandbox" not in rolloutctl("--help").stdout
