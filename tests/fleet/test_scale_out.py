"""The scale-out path as far as this machine allows: every node sending to two centres at once (vmagent,
one queue per URL) with one centre down for a while, and the vmauth config of a VictoriaMetrics cluster
(vminsert/vmselect/vmstorage are not packaged in Debian, so only vmauth checks its config)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench.fleet.fleet import Fleet
from testbed.paths import DEPLOY
from tests.fleet.support import small_fleet
from tests.helpers import Processes, components

pytestmark = pytest.mark.fleet


@pytest.mark.timeout(600)
def test_both_centres_get_every_reading_when_one_was_down(tmp_path: Path) -> None:
    """With vmagent-second-centre.flags, a centre that was down for 30 s catches up from its own queue
    while the other stays current: both end with every reading of every node."""
    if os.geteuid() != 0:
        pytest.skip("the fleet needs root for ip netns")
    settings = small_fleet(nodes=2, second_centre=True)
    fleet = Fleet(settings, Processes(), tmp_path, print)
    try:
        fleet.start()
        assert fleet.second is not None
        figure = fleet.centre_restart(30)
        assert figure.lost == 0, figure
        for centre in (fleet.centre, fleet.second):
            readings = fleet.account(centre)
            assert all(r.ok for r in readings), readings
            assert all(r.expected >= 20 for r in readings), readings
    finally:
        fleet.close()


def test_vmauth_accepts_the_cluster_config() -> None:
    """Debian's vmauth loads deploy/victoria-metrics/cluster/vmauth.yml (a tenant per site, the passwords
    from its environment)."""
    config = DEPLOY / "victoria-metrics" / "cluster" / "vmauth.yml"
    argv = [components()["VMAUTH_BIN"], f"-auth.config={config}", "-dryRun"]
    env = {"PATH": os.environ["PATH"], "VMAUTH_SITE_A_PASSWORD": "a", "VMAUTH_SITE_B_PASSWORD": "b"}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "loaded information about 2 users" in result.stderr
