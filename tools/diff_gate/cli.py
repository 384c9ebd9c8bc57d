"""The pull-request diff gate's command line: classify every resource change between deployed and new
CloudFormation templates, and block replacements or removals of stateful resources unless the pull request
carries the override label.

    python -m tools.diff_gate stacks  --assembly DIR                     stack names of a synthesized assembly
    python -m tools.diff_gate region  --assembly DIR [--expect REGION]   the one region its stacks target
    python -m tools.diff_gate fetch   --assembly DIR --out DIR           deployed templates (GetTemplate)
    python -m tools.diff_gate check   --assembly DIR --baseline DIR --env ENV [--labels a,b] [--cdk-diff FILE]
                                       [--report FILE]                    exit 0 passes, 1 blocked, 2 bad input
    python -m tools.diff_gate comment --reports DIR --out FILE [--envs dev,staging,prod] [--head-sha SHA]
                                       [--run-url URL]                    one pull-request comment from all reports
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.diff_gate.assembly import assembly_region, assembly_stacks, check_assembly, fetch_deployed
from tools.diff_gate.report import render_comment, render_report
from tools.diff_gate.verdict import OVERRIDE_LABEL, GateInputError


def _split_labels(raw: str) -> list[str]:
    raw = raw.strip()
    if raw.startswith("["):
        return [str(label) for label in json.loads(raw)]
    return [label for label in raw.split(",") if label.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.diff_gate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    stacks_cmd = commands.add_parser("stacks", help="print the stack names of an assembly")
    stacks_cmd.add_argument("--assembly", type=Path, required=True)
    region_cmd = commands.add_parser("region", help="print the region the stacks of an assembly target")
    region_cmd.add_argument("--assembly", type=Path, required=True)
    region_cmd.add_argument("--expect", default=None, help="fail unless the stacks target this region (empty: any)")
    fetch_cmd = commands.add_parser("fetch", help="download the deployed templates")
    fetch_cmd.add_argument("--assembly", type=Path, required=True)
    fetch_cmd.add_argument("--out", type=Path, required=True)
    fetch_cmd.add_argument("--region", default=None)
    check_cmd = commands.add_parser("check", help="classify the changes and decide")
    check_cmd.add_argument("--env", required=True)
    check_cmd.add_argument("--assembly", type=Path, required=True)
    check_cmd.add_argument("--baseline", type=Path, required=True)
    check_cmd.add_argument("--labels", default="", help="pull-request labels: comma separated or a JSON list")
    check_cmd.add_argument("--override-label", default=OVERRIDE_LABEL)
    check_cmd.add_argument("--cdk-diff", type=Path, default=None, help="cdk diff output to show in the report")
    check_cmd.add_argument("--report", type=Path, default=None)
    comment_cmd = commands.add_parser("comment", help="join the reports (<env>.md) into one comment")
    comment_cmd.add_argument("--reports", type=Path, required=True)
    comment_cmd.add_argument("--out", type=Path, required=True)
    comment_cmd.add_argument("--envs", default="dev,staging,prod", help="environments that must have a report")
    comment_cmd.add_argument("--head-sha", default=None)
    comment_cmd.add_argument("--run-url", default=None)
    args = parser.parse_args(argv)

    try:
        if args.command == "stacks":
            for stack in assembly_stacks(args.assembly):
                print(stack.stack_name)
            return 0
        if args.command == "region":
            print(assembly_region(args.assembly, args.expect))
            return 0
        if args.command == "fetch":
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                fetched = fetch_deployed(args.assembly, args.out, default_region=args.region)
            except (BotoCoreError, ClientError) as error:
                print(f"diff gate: cannot read the deployed templates: {error}", file=sys.stderr)
                return 2
            for name, deployed in fetched.items():
                print(f"{name}: {'deployed' if deployed else 'not deployed yet'}")
            return 0
        if args.command == "check":
            verdict = check_assembly(
                args.env, args.assembly, args.baseline, _split_labels(args.labels), override_label=args.override_label
            )
            cdk_diff = args.cdk_diff.read_text(encoding="utf-8", errors="replace") if args.cdk_diff else None
            if args.report:
                args.report.parent.mkdir(parents=True, exist_ok=True)
                args.report.write_text(render_report(verdict, cdk_diff), encoding="utf-8")
            # The job log gets every row; the comment and the job summary get a table that fits.
            print(render_report(verdict, max_rows=None))
            return verdict.exit_code
        reports = {path.stem: path.read_text(encoding="utf-8") for path in sorted(args.reports.rglob("*.md"))}
        expected = [env.strip() for env in args.envs.split(",") if env.strip()]
        body = render_comment(reports, expected=expected, head_sha=args.head_sha, run_url=args.run_url)
        args.out.write_text(body, encoding="utf-8")
        return 0
    except (GateInputError, OSError, KeyError, json.JSONDecodeError) as error:
        print(f"diff gate: {error}", file=sys.stderr)
        return 2
