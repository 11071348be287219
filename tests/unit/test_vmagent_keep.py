"""The keep rule of vmagent's self-scrape (job `vmagent` in deploy/vmagent/scrape.yml) lets through every
vmagent family that the alert and recording rules, the dashboards and docs/runbooks.md read at the centre,
and drops vmagent's other families, which would otherwise more than double each node's traffic.

The names come from the generated files themselves (deploy/prometheus/rules/*.yml,
deploy/grafana/dashboards/*.json) and from the runbooks' code spans, so a new panel or alert on a family the
rule drops fails here instead of showing "No data" in production.
"""

from __future__ import annotations

import pytest

from tests.vmagent_keep import ALERT_FAMILIES, USED, keep_regex


class TestKeepRule:
    def test_extraction_finds_what_the_alerts_read(self) -> None:
        """The name extraction sees the families the alerts are built on (else the next test proves nothing)."""
        assert USED.keys() >= ALERT_FAMILIES, sorted(USED)

    @pytest.mark.parametrize("name", sorted(USED))
    def test_every_family_read_at_the_centre_is_kept(self, name: str) -> None:
        """Each vmagent family a rule, panel or runbook query reads passes the anchored keep regex."""
        assert keep_regex().match(name), f"{USED[name]} reads {name}, which scrape.yml's keep rule drops"

    @pytest.mark.parametrize(
        "name",
        [
            "vm_promscrape_scraped_samples_bucket",  # one series per bucket and target
            "vm_promscrape_scrapes_total",
            "go_gc_duration_seconds",
            "go_memstats_alloc_bytes",
            "process_resident_memory_bytes",
            "flag",  # one series per command-line flag
            "vmagent_remotewrite_duration_seconds_bucket",
            "vmagent_remotewrite_block_size_rows_bucket",  # only its _sum is read
            "vmagent_remotewrite_requests_total_extra",  # anchored: a kept name as a prefix is not enough
            "x_vm_persistentqueue_bytes_pending",
        ],
    )
    def test_noisy_families_are_dropped(self, name: str) -> None:
        """vmagent's runtime, scrape and histogram families stay on the node."""
        assert not keep_regex().match(name)
