"""Planned mid-run changes in an exported script: ``param_groups`` edited by hand."""

from __future__ import annotations


def apply_changes(optimizer, changes: list, step: int, per_epoch: int = 1) -> None:
    """The planned mid-run changes due before this step (0-based), made the way
    the tutorials do it by hand: editing optimizer.param_groups.

    Each change is ``(at, epoch, group, name, value, multiply)``: before step
    ``at`` (or the first step of epoch ``at``), set the option ``name`` of
    every param group (or only the one called ``group``) to ``value``, or
    multiply it by ``value``. A group without the option is left alone (with
    Muon and AdamW together, momentum is Muon's only).
    """
    for at, epoch, group, name, value, multiply in changes:
        if (at * per_epoch if epoch else at) == step:
            for param_group in optimizer.param_groups:
                if name in param_group and (group is None or param_group.get("name") == group):
                    param_group[name] = param_group[name] * value if multiply else value
