"""What the gate decides: resource changes, the verdict of one environment, and the override label."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

OVERRIDE_LABEL = "allow-stateful-change"


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    REPLACED = "replaced"
    MODIFIED = "modified in place"


@dataclass(frozen=True)
class ResourceChange:
    stack: str
    logical_id: str
    resource_type: str
    kind: ChangeKind
    stateful: bool
    # Changed properties (top-level names), and for a replacement why it happens.
    changed: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    retained: bool = False

    @property
    def destructive(self) -> bool:
        """A stateful resource is deleted or orphaned (removed) or created anew (replaced): its data is gone."""
        return self.stateful and self.kind in (ChangeKind.REMOVED, ChangeKind.REPLACED)


@dataclass(frozen=True)
class Verdict:
    env: str
    changes: tuple[ResourceChange, ...]
    override_label: str = OVERRIDE_LABEL
    labels: frozenset[str] = field(default_factory=frozenset)

    @property
    def destructive(self) -> tuple[ResourceChange, ...]:
        return tuple(change for change in self.changes if change.destructive)

    @property
    def overridden(self) -> bool:
        return bool(self.destructive) and self.override_label in self.labels

    @property
    def passed(self) -> bool:
        return not self.destructive or self.override_label in self.labels

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


class GateInputError(Exception):
    """A template or assembly the gate cannot read."""


def decide(
    env: str, changes: Iterable[ResourceChange], labels: Iterable[str] = (), *, override_label: str = OVERRIDE_LABEL
) -> Verdict:
    # Blocking changes first, so that a shortened table still shows every one of them.
    ordered = sorted(changes, key=lambda change: (not change.destructive, change.stack, change.logical_id))
    return Verdict(env, tuple(ordered), override_label, frozenset(label.strip() for label in labels if label.strip()))
