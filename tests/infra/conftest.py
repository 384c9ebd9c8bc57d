"""Synthesizes each environment once per test session (5-10 s each) and shares the templates."""

from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ENVIRONMENTS, get_config
from stacks.synth import Synthesized, synthesize, write_yaml

DEPLOYED_ENVIRONMENTS = ["dev", "staging", "prod"]
_OUTDIR = Path(tempfile.mkdtemp(prefix="infra-tests-cdk-"))


@dataclass(frozen=True)
class EnvTemplates:
    env_name: str
    synthesized: Synthesized
    stateful: dict[str, Any]
    service: dict[str, Any] | None
    yaml_files: list[Path]

    def resources(self, template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}

    def assets(self, stack_name: str) -> dict[str, Any]:
        return json.loads((self.synthesized.outdir / f"{stack_name}.assets.json").read_text())


@functools.cache
def synthesized(env_name: str) -> EnvTemplates:
    """Module-level cache: one synth per environment per process (xdist workers each synth what they use)."""
    result = synthesize(get_config(env_name), outdir=_OUTDIR / env_name)
    templates = {stack.stack_name: stack.template for stack in result.assembly.stacks}
    prefix = get_config(env_name).stack_prefix
    return EnvTemplates(
        env_name=env_name,
        synthesized=result,
        stateful=templates[f"{prefix}-stateful"],
        service=templates.get(f"{prefix}-service"),
        yaml_files=write_yaml(result.assembly),
    )


@pytest.fixture(scope="session", params=list(ENVIRONMENTS))
def any_env(request: pytest.FixtureRequest) -> EnvTemplates:
    return synthesized(request.param)


@pytest.fixture(scope="session", params=DEPLOYED_ENVIRONMENTS)
def deployed_env(request: pytest.FixtureRequest) -> EnvTemplates:
    return synthesized(request.param)


@pytest.fixture(scope="session")
def prod() -> EnvTemplates:
    """API on Fargate behind an ALB."""
    return synthesized("prod")


@pytest.fixture(scope="session")
def dev() -> EnvTemplates:
    """API on Lambda behind an HTTP API."""
    return synthesized("dev")
