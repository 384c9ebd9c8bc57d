"""Synthesizes one environment (or all) to cdk.out/<env>/: each stack as *.template.json and, beside it,
*.template.yaml with CloudFormation short forms (!Ref, !GetAtt). Fails on any error annotation (cdk-nag)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from stacks.config import ENVIRONMENTS, ApiMode, EnvironmentConfig, get_config

if TYPE_CHECKING:
    from aws_cdk import cx_api

    from stacks.application import AppStacks


@dataclass(frozen=True)
class Synthesized:
    stacks: AppStacks
    assembly: cx_api.CloudAssembly
    outdir: Path

    def errors(self) -> list[str]:
        """Error annotations (cdk-nag findings without a suppression, failed validations)."""
        return [
            f"{stack.stack_name} {entry.path}: {entry.data}"
            for stack in self.assembly.stacks
            for entry in stack.find_metadata_by_type("aws:cdk:error")
        ]


def synthesize(config: EnvironmentConfig, *, outdir: Path) -> Synthesized:
    from stacks.application import build_stacks, new_app

    app = new_app(outdir=str(outdir))
    stacks = build_stacks(app, config)
    return Synthesized(stacks=stacks, assembly=app.synth(), outdir=outdir)


def write_yaml(assembly: cx_api.CloudAssembly) -> list[Path]:
    """Each stack's template as YAML with short forms, beside the JSON."""
    import cfn_flip

    written = []
    for stack in assembly.stacks:
        json_path = Path(assembly.directory) / stack.template_file
        yaml_path = json_path.with_suffix(".yaml")
        yaml_path.write_text(cfn_flip.to_yaml(json_path.read_text(), clean_up=False, long_form=False))
        written.append(yaml_path)
    return written


def synth_environment(env_name: str, *, outdir: Path, api_mode: ApiMode | None = None) -> list[Path]:
    """Writes the templates of `env_name` into `outdir`; returns the YAML files written."""
    config = get_config(env_name)
    if api_mode:
        config = replace(config, api=replace(config.api, mode=api_mode))
    synthesized = synthesize(config, outdir=outdir)
    errors = synthesized.errors()
    if errors:
        raise SystemExit(f"synth of {env_name} has {len(errors)} error(s):\n" + "\n".join(errors))
    return write_yaml(synthesized.assembly)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.synth", description=__doc__)
    parser.add_argument("--env", required=True, choices=[*ENVIRONMENTS, "all"])
    parser.add_argument("--api-mode", choices=["fargate", "lambda"], default=None, help="override the config")
    parser.add_argument("--outdir", type=Path, default=None, help="default: cdk.out/<env>")
    args = parser.parse_args(argv)
    for env_name in ENVIRONMENTS if args.env == "all" else [args.env]:
        started = time.monotonic()
        outdir = args.outdir if args.outdir and args.env != "all" else Path("cdk.out") / env_name
        written = synth_environment(env_name, outdir=outdir, api_mode=args.api_mode)
        names = ", ".join(path.name for path in written)
        print(f"{env_name}: {names} in {outdir}/ ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
