"""Keep one node's file valid when several scripts print into it: a series belongs to the first script that
exports it, and a family keeps one set of label names, or node_exporter would reject the whole file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from edge_metrics.samples import Family, RejectedLine, Sample


def reject_conflicts(
    script: str, samples: tuple[Sample, ...], others: Mapping[str, tuple[Sample, ...]]
) -> tuple[tuple[Sample, ...], list[RejectedLine]]:
    """Drop the samples of `script` that clash with what the other scripts currently export."""
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
        else:
            kept.append(sample)
    return tuple(kept), rejected


def script_families(samples_by_script: Mapping[str, Iterable[Sample]]) -> list[Family]:
    """Group every script's samples into gauge families, in script order."""
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
    return [Family(name, helps[owners[name]], "gauge", tuple(samples)) for name, samples in grouped.items()]
