"""The local programs standing in for the pod's images (tests/k8s/test_pod_spec_run.py's), with what this machine
adds beyond a board taken back out, so that what is measured is the pod's."""

from __future__ import annotations

from pathlib import Path

from bench.pod import fsyncs
from tests.k8s.podsim import LocalImage
from tests.k8s.test_pod_spec_run import local_images

NODE_EXPORTER = "quay.io/prometheus/node-exporter"
# Debian's node_exporter enables the systemd collector, the upstream image of the manifest does not (it would
# fail here, no D-Bus, and log an error line at every scrape).
UPSTREAM_DEFAULTS = ("--no-collector.systemd",)


def simulator_state_in(image: LocalImage, memory: Path) -> LocalImage:
    """The I2C simulator keeping its register state in `memory` (a tmpfs) instead of this machine's /tmp: on a
    board a bus transfer writes nothing to disk. The program under it gets the container's TMPDIR back."""
    argv = list(image.entrypoint)
    if "--" not in argv:
        return image
    at = argv.index("--") + 1
    return LocalImage(["env", f"TMPDIR={memory}", *argv[:at], "env", "-u", "TMPDIR", *argv[at:]], image.env)


def pod_images(memory: Path, logs: Path | None) -> dict[str, LocalImage]:
    """Every image of the manifests as a local program; with `logs`, each under strace (fsyncs.traced)."""
    images = {}
    for repo, image in local_images().items():
        if repo == NODE_EXPORTER:
            image = LocalImage([*image.entrypoint, *UPSTREAM_DEFAULTS], image.env)
        image = simulator_state_in(image, memory)
        images[repo] = image if logs is None else fsyncs.traced(image, logs)
    return images
