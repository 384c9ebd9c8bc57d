"""The client library builds into a wheel on its own (offline: flit_core from the project venv, no isolation) that
holds the package, its py.typed marker and the `jobtickets` command, needs httpx only, and works unpacked away from
this repository."""

from __future__ import annotations

import configparser
import email
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
MODULES = {"__init__.py", "__main__.py", "_core.py", "aio.py", "cli.py", "client.py", "errors.py", "models.py"}


def test_the_wheel_holds_the_typed_package_and_runs_on_its_own(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            tmp_path,
            CLIENT,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = tmp_path.glob("jobtickets-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [dist_info] = {name.split("/")[0] for name in names if ".dist-info/" in name}
        metadata = email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{dist_info}/entry_points.txt").decode())
        archive.extractall(tmp_path / "unpacked")
    assert {f"jobtickets/{module}" for module in MODULES | {"py.typed", "webhooks.py"}} <= names
    assert not [name for name in names if name.startswith(("runtime/", "tests/", "stacks/"))]
    assert metadata["Name"] == "jobtickets"
    assert [requirement.split(" ")[0].split(">")[0] for requirement in metadata.get_all("Requires-Dist")] == ["httpx"]
    assert dict(entry_points["console_scripts"]) == {"jobtickets": "jobtickets.cli:main"}
    # Unpacked outside the repository, it imports from itself (not the editable source) and nothing of runtime/.
    probe = (
        "import sys, jobtickets, jobtickets.cli; print(jobtickets.__file__); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('runtime', 'stacks', 'tests')))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "unpacked")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    location, foreign = ran.stdout.splitlines()
    assert location == str(tmp_path / "unpacked" / "jobtickets" / "__init__.py") and foreign == "[]"
    version = subprocess.run(
        [sys.executable, "-m", "jobtickets", "--version"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "unpacked")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert version.returncode == 0 and version.stdout.startswith("jobtickets "), version.stderr
