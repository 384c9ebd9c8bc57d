"""The images install only what the lock files list, pinned by version and hash, from a base image pinned by
digest: a rebuild of one commit for dev, staging and prod installs the same bits. These tests fail when a
requirement changes without `make lock`, or when an image build stops installing from the locks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_REQUIREMENTS = "runtime/requirements.txt"
LAMBDA_REQUIREMENTS = ".ci/requirements-lambda.txt"
RUNTIME_LOCK = ROOT / "runtime" / "requirements.lock"
LAMBDA_LOCK = ROOT / ".ci" / "requirements-lambda.lock"
EMULATOR_LOCK = ROOT / ".ci" / "requirements-emulator.lock"
LOCKS = [RUNTIME_LOCK, LAMBDA_LOCK, EMULATOR_LOCK]

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
SHA256 = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Locked:
    version: str
    hashes: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)


def parse_lock(path: Path) -> dict[str, Locked]:
    """pip-compile's output: `name==version \\` then `--hash=` lines, then `# via` annotations."""
    locked: dict[str, Locked] = {}
    current: Locked | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        match = PIN.match(raw)
        if match:
            current = locked.setdefault(canonical(match[1]), Locked(match[2]))
        elif current is not None and line.startswith("--hash="):
            current.hashes.extend(SHA256.findall(line))
        elif current is not None and line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            if rest:
                current.via.add(rest)
        elif current is not None and line.startswith("#   "):
            current.via.add(line.removeprefix("#").strip())
    return locked


def parse_requirements(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: not pinned with ==: {line}"
        pins[canonical(match[1])] = match[2]
    return pins


def top_level(lock: dict[str, Locked], requirements_file: str) -> dict[str, str]:
    return {name: entry.version for name, entry in lock.items() if f"-r {requirements_file}" in entry.via}


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_every_locked_package_is_pinned_with_hashes(lock: Path) -> None:
    entries = parse_lock(lock)
    assert entries, f"{lock.name} lists no package"
    unhashed = sorted(name for name, entry in entries.items() if not entry.hashes)
    assert not unhashed, f"{lock.name}: no sha256 hash for {unhashed}: run `make lock`"
    # Every other line is a hash, an annotation or a continuation: nothing unpinned slips in.
    for raw in lock.read_text().splitlines():
        line = raw.strip()
        assert not line or line.startswith(("#", "--hash=")) or PIN.match(raw), f"{lock.name}: unexpected {line!r}"


def test_runtime_lock_covers_exactly_the_runtime_requirements() -> None:
    wanted = parse_requirements(ROOT / RUNTIME_REQUIREMENTS)
    locked = parse_lock(RUNTIME_LOCK)
    assert top_level(locked, RUNTIME_REQUIREMENTS) == wanted, (
        f"{RUNTIME_LOCK.name} does not match {RUNTIME_REQUIREMENTS}: run `make lock`"
    )


def test_lambda_lock_is_the_runtime_lock_plus_the_runtime_interface_client() -> None:
    runtime = parse_lock(RUNTIME_LOCK)
    lambda_ = parse_lock(LAMBDA_LOCK)
    assert top_level(lambda_, RUNTIME_REQUIREMENTS) == parse_requirements(ROOT / RUNTIME_REQUIREMENTS)
    assert top_level(lambda_, LAMBDA_REQUIREMENTS) == parse_requirements(ROOT / LAMBDA_REQUIREMENTS)
    # The lambda image installs its lock over the runtime's venv: one version of each shared package.
    differing = {
        name: (entry.version, lambda_[name].version if name in lambda_ else None)
        for name, entry in runtime.items()
        if name not in lambda_ or lambda_[name].version != entry.version
    }
    assert not differing, f"runtime and lambda locks disagree (runtime, lambda): {differing}: run `make lock`"


def test_emulator_lock_runs_the_moto_the_tests_run() -> None:
    [moto_pin] = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("moto[")]
    version = moto_pin.split("==", 1)[1].strip()
    assert parse_lock(EMULATOR_LOCK)["moto"].version == version, f"{EMULATOR_LOCK.name}: run `make lock`"


def test_the_base_image_is_pinned_by_digest() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    [default] = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"[\w./:-]+@sha256:[0-9a-f]{64}", default), f"base image not pinned by digest: {default}"


def test_every_image_install_is_from_a_lock_with_required_hashes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = [" ".join(block.split()) for block in re.findall(r"pip install((?:[^\n]*\\\n)*[^\n]*)", dockerfile)]
    assert len(installs) == 3, installs  # runtime, lambda, emulator
    for install in installs:
        assert "--require-hashes" in install and "--only-binary :all:" in install, install
        [requirements] = re.findall(r"-r (\S+)", install)
        assert requirements.endswith(".lock"), install
    # The offline builder downloads exactly the locked wheels, checking their hashes on the host already.
    images_sh = (ROOT / ".ci" / "images.sh").read_text()
    [locks] = re.findall(r"^LOCKS=\((.*)\)$", images_sh, re.MULTILINE)
    assert sorted(locks.split()) == sorted(str(path.relative_to(ROOT)) for path in LOCKS)
    assert "--require-hashes" in images_sh
    # And the build context holds the locks, not the loose requirement files.
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    for lock in LOCKS:
        relative = str(lock.relative_to(ROOT))
        assert f"!{relative}" in dockerignore or f"!{relative.split('/')[0]}/" in dockerignore, relative
