"""The kubelet emulation the pod-spec run relies on behaves like the kubelet where it matters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.k8s.podsim import ConfigMapVolume, expand

pytestmark = pytest.mark.k8s


class TestConfigMapVolume:
    """A ConfigMap directory mount: `..data` -> timestamped dir, `key -> ..data/key`, atomic swaps."""

    def test_initial_layout_is_the_kubelets(self, tmp_path: Path) -> None:
        volume = ConfigMapVolume(tmp_path / "cm", {"nodes.conf": "a=b\n", "b.sh": "#!/bin/bash\n"})
        data = os.readlink(volume.directory / "..data")
        assert data.startswith("..") and (volume.directory / data).is_dir()
        assert os.readlink(volume.directory / "nodes.conf") == "..data/nodes.conf"
        assert (volume.directory / "nodes.conf").read_text() == "a=b\n"
        assert sorted(p.name for p in volume.directory.iterdir()) == sorted(["..data", data, "nodes.conf", "b.sh"])

    def test_update_swaps_data_adds_and_removes_keys_and_drops_the_old_payload(self, tmp_path: Path) -> None:
        volume = ConfigMapVolume(tmp_path / "cm", {"nodes.conf": "old\n", "gone.sh": "x\n"})
        old = os.readlink(volume.directory / "..data")
        volume.update({"nodes.conf": "new\n", "added.sh": "y\n"})
        new = os.readlink(volume.directory / "..data")
        assert new != old and not (volume.directory / old).exists()
        assert (volume.directory / "nodes.conf").read_text() == "new\n"
        assert (volume.directory / "added.sh").read_text() == "y\n"
        assert not (volume.directory / "gone.sh").is_symlink()
        assert not (volume.directory / "..data_tmp").exists()


class TestExpand:
    """$(VAR) expansion as Kubernetes does it in args and env values."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("-remoteWrite.label=node=$(NODE_NAME)", "-remoteWrite.label=node=bupt-a"),
            ("$(UNDEFINED) stays", "$(UNDEFINED) stays"),
            ("$$(NODE_NAME) is escaped", "$(NODE_NAME) is escaped"),
            ("$(date +%s) is not a variable", "$(date +%s) is not a variable"),
        ],
    )
    def test_expansion(self, text: str, expected: str) -> None:
        assert expand(text, {"NODE_NAME": "bupt-a"}) == expected
