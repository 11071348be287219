"""The k3s path without a registry, as docs/kubernetes.md#get-the-image-onto-your-nodes says: the archive
imported into containerd (Debian's, the one k3s embeds; `k3s ctr` is its ctr) and the collector run from
it. The test starts containerd with its own root, state and socket under a temporary folder, in the
namespace k3s's kubelet uses (k8s.io), and stops it after."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import processes, wait_until
from tests.image.engine import archive, image_ref

pytestmark = pytest.mark.image

NAMESPACE = "k8s.io"


@pytest.fixture(scope="module")
def ctr(image_out: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """`ctr` against a containerd of the test's own (the CRI plugin off: no kubelet talks to it)."""
    for tool in ("containerd", "ctr", "runc"):
        assert shutil.which(tool), f"{tool} missing: `make image-test-tools` installs Debian's containerd"
    # Short: a unix socket path has a length limit, and pytest's temporary folders are deep.
    root = Path(tmp_path_factory.mktemp("ctd"))
    socket = root / "sock"
    config = root / "config.toml"
    config.write_text(f'''version = 2
root = "{root / 'root'}"
state = "{root / 'state'}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
''')
    base = ["ctr", "--address", str(socket), "--namespace", NAMESPACE]
    with processes() as procs:
        daemon = procs.start(["containerd", "--config", str(config)], log=root / "containerd.log")
        try:
            wait_until(lambda: subprocess.run([*base, "version"], capture_output=True, timeout=10).returncode == 0,
                       timeout=30, what=f"containerd answering (log {root / 'containerd.log'})")
            yield base
        finally:
            # Containers left by a failed test, then the daemon; its mounts go with the snapshots.
            for task in subprocess.run([*base, "tasks", "ls", "-q"], capture_output=True, text=True,
                                       timeout=30).stdout.split():
                subprocess.run([*base, "tasks", "kill", "-s", "SIGKILL", task], capture_output=True, timeout=30)
            procs.stop(daemon)
            subprocess.run(["umount", "-R", str(root / "state")], capture_output=True, timeout=30)


def test_import_the_multi_arch_archive_and_run_the_collector(ctr: list[str]) -> None:
    """`k3s ctr images import edge-metrics-collector_VERSION.oci.tar` takes this node's platform from the index
    under the name the manifests use; the collector starts from it and checks its bundled config."""
    imported = subprocess.run([*ctr, "images", "import", str(archive())], capture_output=True, text=True,
                              timeout=300)
    assert imported.returncode == 0, imported.stderr
    listed = subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True, timeout=60).stdout.split()
    assert str(image_ref()) in listed, listed
    run = subprocess.run([*ctr, "run", "--rm", "--net-host", str(image_ref()), "edge-metrics-import-test",
                          "edge-metrics", "check"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "bupt-a" in run.stdout, run.stdout
