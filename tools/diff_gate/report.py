"""Markdown for people: one environment's report and the one pull-request comment that joins them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from tools.diff_gate.verdict import ChangeKind, ResourceChange, Verdict

# The hidden marker the comment job searches for, so the gate edits its one comment instead of adding another.
COMMENT_MARKER = "<!-- job-tickets:diff-gate -->"

# GitHub rejects comments above 65,536 characters; three environments with table and cdk diff output must fit.
MAX_COMMENT_CHARS = 65_000
MAX_CDK_DIFF_CHARS = 8_000
MAX_TABLE_ROWS = 60
OPEN_TABLE_ROWS = 15


def _row(change: ResourceChange, *, overridden: bool) -> str:
    mark = ("⚠️" if overridden else "❌") if change.destructive else ("🗄️" if change.stateful else "")
    details = ", ".join(change.reasons) if change.reasons else ", ".join(change.changed)
    if change.kind is ChangeKind.REPLACED and change.reasons:
        details = f"replacement: {details}"
    if change.destructive and change.retained:
        kept = "orphaned, not deleted" if change.kind is ChangeKind.REMOVED else "old one kept, new one empty"
        details = f"{details} (retained: {kept})".strip()
    return (
        f"| {mark} | {change.stack} | `{change.logical_id}` | {change.resource_type} | {change.kind} | "
        f"{details.replace('|', '/')} |"
    )


def render_report(verdict: Verdict, cdk_diff: str | None = None, *, max_rows: int | None = MAX_TABLE_ROWS) -> str:
    """The markdown section of one environment: verdict, a table of resource changes, the cdk diff output."""
    if not verdict.passed:
        headline = (
            f"### ❌ `{verdict.env}`: blocked, {len(verdict.destructive)} stateful resource(s) would be replaced "
            f"or removed. Add the label `{verdict.override_label}` if this is intended."
        )
    elif verdict.overridden:
        headline = (
            f"### ⚠️ `{verdict.env}`: passes by override (`{verdict.override_label}`): "
            f"{len(verdict.destructive)} stateful resource(s) will be replaced or removed."
        )
    elif verdict.changes:
        headline = f"### ✅ `{verdict.env}`: passes, no stateful resource is replaced or removed."
    else:
        headline = f"### ✅ `{verdict.env}`: no resource changes."
    lines = [headline, ""]
    if verdict.changes:
        counts = Counter(change.kind for change in verdict.changes)
        summary = ", ".join(f"{counts[kind]} {kind}" for kind in ChangeKind if counts[kind])
        shown = verdict.changes if max_rows is None else verdict.changes[:max_rows]
        rows = [_row(change, overridden=verdict.overridden) for change in shown]
        if len(shown) < len(verdict.changes):
            rows.append(f"| | | ... and {len(verdict.changes) - len(shown)} more: see the job log | | | |")
        lines += [
            f"<details{' open' if len(verdict.changes) <= OPEN_TABLE_ROWS else ''}>"
            f"<summary>{len(verdict.changes)} resource change(s): {summary}</summary>",
            "",
            "| | stack | resource | type | change | details |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "❌ blocks, ⚠️ would block without the label, 🗄️ stateful (table, queue, bucket, parameter, or retained).",
            "</details>",
        ]
    if cdk_diff is not None:
        text = cdk_diff.strip() or "(no differences)"
        if len(text) > MAX_CDK_DIFF_CHARS:
            text = text[:MAX_CDK_DIFF_CHARS] + "\n... (truncated; the full output is in the job log)"
        lines += [
            "",
            f"<details><summary><code>cdk diff</code> for {verdict.env}</summary>",
            "",
            "```text",
            text.replace("```", "'''"),
            "```",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def render_comment(
    reports: Mapping[str, str],
    *,
    expected: Sequence[str] = (),
    head_sha: str | None = None,
    run_url: str | None = None,
) -> str:
    """One pull-request comment from every environment's report, under the marker the comment job looks for.

    An expected environment without a report is named: its job failed before the gate could decide."""
    lines = [COMMENT_MARKER, "## Diff gate", ""]
    if head_sha or run_url:
        commit = f"commit {head_sha}" if head_sha else "this commit"
        lines += [f"For {commit}" + (f", [workflow run]({run_url})." if run_url else "."), ""]
    order = [*expected, *sorted(set(reports) - set(expected))]
    for env in order:
        report = reports.get(env)
        if report is None:
            report = f"### ⚠️ `{env}`: no verdict: the job failed before the gate ran (see the workflow run)."
        lines += [report.strip(), ""]
    body = "\n".join(lines)
    if len(body) > MAX_COMMENT_CHARS:
        body = body[: MAX_COMMENT_CHARS - 200] + "\n\n... (truncated: see the job summaries of this run)\n"
    return body
