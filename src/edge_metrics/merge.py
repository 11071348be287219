"""Keep one node's file valid when several scripts print into it: a series belongs to the first script that
exports it, and a family keeps one set of label names and one HELP and TYPE, or node_exporter would reject the
whole file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from edge_metrics.samples import Family, Metadata, RejectedLine, Sample

NO_METADATA: Mapping[str, Metadata] = {}


def reject_conflicts(
    script: str,
    samples: tuple[Sample, ...],
    others: Mapping[str, tuple[Sample, ...]],
    *,
    metadata: Mapping[str, Metadata] = NO_METADATA,
    others_metadata: Mapping[str, Mapping[str, Metadata]] | None = None,
) -> tuple[tuple[Sample, ...], list[RejectedLine]]:
    """Drop the samples of `script` that clash with what the other scripts currently export: a series another
    script owns, other label names, or another TYPE or HELP than the one the family already has."""
    owner_of_series: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    family_labels: dict[str, tuple[frozenset[str], str]] = {}
    for other, other_samples in others.items():
        if other == script:
            continue
        for sample in other_samples:
            owner_of_series[(sample.name, tuple(sorted(sample.labels)))] = other
            family_labels.setdefault(sample.name, (frozenset(n for n, _ in sample.labels), other))
    if not family_labels:
        return samples, []
    declared = others_metadata or {}
    kept: list[Sample] = []
    rejected: list[RejectedLine] = []
    for sample in samples:
        owner = owner_of_series.get((sample.name, tuple(sorted(sample.labels))))
        known = family_labels.get(sample.name)
        if owner is not None:
            rejected.append(RejectedLine(0, sample.name, f"series already exported by script {owner!r}"))
        elif known is not None and known[0] != frozenset(n for n, _ in sample.labels):
            rejected.append(
                RejectedLine(0, sample.name, f"label names differ from those script {known[1]!r} exports")
            )
        elif known is not None and (clash := _metadata_clash(
                metadata.get(sample.name), declared.get(known[1], NO_METADATA).get(sample.name))) is not None:
            rejected.append(RejectedLine(0, sample.name, f"{clash} script {known[1]!r} declares"))
        else:
            kept.append(sample)
    return tuple(kept), rejected


def _metadata_clash(mine: Metadata | None, theirs: Metadata | None) -> str | None:
    """How two scripts' declarations of one family differ (an undeclared TYPE is a gauge), or None."""
    my_type, their_type = _type(mine), _type(theirs)
    if my_type != their_type:
        return f"TYPE {my_type} differs from the {their_type}"
    if mine is not None and theirs is not None and mine.help is not None and theirs.help is not None \
            and mine.help != theirs.help:
        return "HELP differs from the one"
    return None


def _type(declared: Metadata | None) -> str:
    return declared.type if declared is not None and declared.type is not None else "gauge"


def type_changes(
    before: Iterable[Sample], previous: Mapping[str, Metadata], now: Iterable[Sample], current: Mapping[str, Metadata]
) -> list[tuple[str, str, str]]:
    """(name, old TYPE, new TYPE) of each family exported by two runs in a row whose TYPE changed."""
    if not previous and not current:
        return []  # nothing declared in either run: every family was and is a gauge
    names = {sample.name for sample in now} & {sample.name for sample in before}
    changes = [(name, _type(previous.get(name)), _type(current.get(name))) for name in sorted(names)]
    return [change for change in changes if change[1] != change[2]]


def script_families(
    samples_by_script: Mapping[str, Iterable[Sample]],
    metadata_by_script: Mapping[str, Mapping[str, Metadata]] | None = None,
) -> list[Family]:
    """Group every script's samples into families, in script order, with the HELP and TYPE their owner
    declared (a gauge with a generic help text when it declared none)."""
    grouped: dict[str, list[Sample]] = {}
    owners: dict[str, str] = {}
    for script, samples in samples_by_script.items():
        for sample in samples:
            family = grouped.get(sample.name)
            if family is None:
                grouped[sample.name] = [sample]
                owners[sample.name] = script
            else:
                family.append(sample)
    # One help string per script, shared by its families: a script may print thousands of keys.
    helps = {script: f"Reading printed by collector script {script}." for script in samples_by_script}
    declared = metadata_by_script or {}
    families = []
    for name, samples in grouped.items():
        owner = owners[name]
        found = declared.get(owner, NO_METADATA).get(name)
        help_text = found.help if found is not None and found.help is not None else helps[owner]
        families.append(Family(name, help_text, _type(found), tuple(samples)))
    return families
