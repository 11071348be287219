"""The translation of a pod spec's container into podman options, in-process (no engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.image.podspec import podman_run
from tests.k8s.podsim import PodSpecError

pytestmark = pytest.mark.image


def translate(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    spec = {"hostNetwork": True, **pod, "containers": [container]}
    run = podman_run(spec, container, node_name="n1", volumes={"v": Path("/srv/v")}, rewrite=lambda s: s, name="c")
    return [*run.options, "|", *run.command]


BASE = {"name": "metric-sidecar", "image": "edge-metrics-collector"}


class TestPodmanRun:
    def test_pod_seccomp_is_inherited_and_container_fields_win(self) -> None:
        options = translate({"securityContext": {"runAsUser": 5, "seccompProfile": {"type": "Unconfined"}}},
                            {**BASE, "securityContext": {"runAsUser": 7, "seccompProfile": {"type": "RuntimeDefault"}}})
        assert options[options.index("--user") + 1] == "7"
        assert "seccomp=unconfined" not in options

    def test_every_restriction_becomes_a_flag(self) -> None:
        options = translate({}, {**BASE, "securityContext": {
            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}, "runAsUser": 0}})
        text = " ".join(options)
        for flag in ("--read-only --read-only-tmpfs=false", "--security-opt no-new-privileges", "--cap-drop ALL",
                     "--user 0", "--network host"):
            assert flag in text, flag

    def test_env_from_the_node_and_expanded(self) -> None:
        options = translate({}, {**BASE, "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "WHERE", "value": "/x/$(NODE_NAME)"}], "args": ["run", "$(NODE_NAME)"]})
        assert "NODE_NAME=n1" in options and "WHERE=/x/n1" in options
        assert options[-2:] == ["run", "n1"]

    def test_mounts_at_their_paths_read_only_where_the_spec_says(self) -> None:
        options = translate({}, {**BASE, "volumeMounts": [{"name": "v", "mountPath": "/etc/a", "readOnly": True},
                                                          {"name": "v", "mountPath": "/b/f", "subPath": "f"}]})
        assert "/srv/v:/etc/a:ro" in options and "/srv/v/f:/b/f:rw" in options

    def test_command_replaces_the_entrypoint(self) -> None:
        options = translate({}, {**BASE, "command": ["bash", "-c"], "args": ["true"]})
        assert options[options.index("--entrypoint") + 1] == "bash"
        assert options[options.index("|") + 1:] == ["-c", "true"]

    @pytest.mark.parametrize(("pod", "container", "reason"), [
        ({}, {**BASE, "securityContext": {"runAsNonRoot": True, "runAsUser": 0}}, "runAsNonRoot"),
        ({}, {**BASE, "securityContext": {"seccompProfile": {"type": "Localhost"}}}, "Localhost"),
        ({"securityContext": {"fsGroup": 1}}, BASE, "fsGroup"),
        ({}, {**BASE, "lifecycle": {}}, "lifecycle"),
        ({}, {**BASE, "env": [{"name": "X", "valueFrom": {"secretKeyRef": {}}}]}, "X"),
        ({}, {**BASE, "volumeMounts": [{"name": "missing", "mountPath": "/m"}]}, "missing"),
        ({"hostNetwork": False}, BASE, "hostNetwork"),
    ])
    def test_what_is_not_translated_is_refused(self, pod: dict[str, Any], container: dict[str, Any],
                                                reason: str) -> None:
        with pytest.raises(PodSpecError, match=reason):
            translate(pod, container)
