"""A container of a rendered pod spec -> the `podman run` options that start it as the kubelet would: its
command and args, env (NODE_NAME from the node, `$(VAR)` expanded), volumes at their mount paths,
readOnlyRootFilesystem, user and group, capabilities, seccomp, privilege escalation, host network.

Whatever the spec asks that is not translated here is refused (PodSpecError): a new field must be added
here before a test can claim the image runs the spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.k8s.podsim import PodSpecError, expand

Obj = dict[str, Any]

# Pod-level securityContext fields that apply to every container unless the container sets them.
INHERITED = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")
CONTAINER_SECURITY = {"privileged", "runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                      "allowPrivilegeEscalation", "capabilities", "seccompProfile"}
POD_SECURITY = {*INHERITED, "supplementalGroups"}
# Fields of a container that change nothing podman could check here (probes are run separately,
# resources are measured by tests/k8s/test_pod_spec_run.py, ports belong to the host network).
IGNORED = {"name", "image", "livenessProbe", "readinessProbe", "startupProbe", "resources", "ports",
           "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy"}


@dataclass(frozen=True, slots=True)
class Run:
    """`podman run [options] IMAGE [command...]` for one container."""

    options: tuple[str, ...]
    command: tuple[str, ...]
    env: Mapping[str, str]


def security_context(pod_spec: Obj, container: Obj) -> Obj:
    pod = dict(pod_spec.get("securityContext") or {})
    unknown = set(pod) - POD_SECURITY
    if unknown:
        raise PodSpecError(f"pod securityContext {sorted(unknown)} is not translated to podman")
    merged = {key: pod[key] for key in INHERITED if key in pod}
    own = dict(container.get("securityContext") or {})
    unknown = set(own) - CONTAINER_SECURITY
    if unknown:
        raise PodSpecError(f"container {container['name']}: securityContext {sorted(unknown)} is not translated")
    merged.update(own)
    if "supplementalGroups" in pod:
        merged["supplementalGroups"] = pod["supplementalGroups"]
    return merged


def environment(container: Obj, node_name: str, rewrite: Any) -> dict[str, str]:
    """The container's env as the kubelet gives it: values with $(VAR) expanded, spec.nodeName from the node;
    `rewrite` moves ports the way the pod's other containers moved (podsim's Node.rewrite_network)."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            env[item["name"]] = node_name
        else:
            raise PodSpecError(f"container {container['name']}: env {item['name']} source is not translated")
    return {key: rewrite(value) for key, value in env.items()}


def podman_run(
    pod_spec: Obj,
    container: Obj,
    *,
    node_name: str,
    volumes: Mapping[str, Path],
    rewrite: Any,
    extra_env: Mapping[str, str] | None = None,
    extra_mounts: Sequence[str] = (),
    name: str,
) -> Run:
    """The options for `container` of `pod_spec`; `volumes` maps each volume name to its directory (or file)
    on this machine, laid out by tests/k8s/podsim.py; `name` is the container's name for podman.
    `extra_env` and `extra_mounts` stand in for the node's hardware (the I2C simulator) and come after the
    spec's own."""
    unknown = set(container) - IGNORED - {"command", "args", "env", "volumeMounts", "securityContext", "workingDir"}
    if unknown:
        raise PodSpecError(f"container {container['name']}: {sorted(unknown)} not translated to podman")
    options: list[str] = ["--name", name, "--pull=never"]
    if pod_spec.get("hostNetwork"):
        options += ["--network", "host"]
    else:
        raise PodSpecError("only hostNetwork pods are translated (the DaemonSet is one)")

    context = security_context(pod_spec, container)
    privileged = bool(context.get("privileged"))
    if privileged:
        options.append("--privileged")
    if "runAsUser" in context:
        user = str(context["runAsUser"])
        if "runAsGroup" in context:
            user += f":{context['runAsGroup']}"
        options += ["--user", user]
        if context.get("runAsNonRoot") and int(context["runAsUser"]) == 0:
            raise PodSpecError(f"container {container['name']}: runAsNonRoot with runAsUser 0: the kubelet refuses")
    for group in context.get("supplementalGroups", []):
        options += ["--group-add", str(group)]
    if context.get("readOnlyRootFilesystem"):
        # The kubelet puts no tmpfs anywhere by itself: only the spec's volumes are writable.
        options += ["--read-only", "--read-only-tmpfs=false"]
    if context.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    capabilities = context.get("capabilities") or {}
    for cap in capabilities.get("drop", []):
        options += ["--cap-drop", cap]
    for cap in capabilities.get("add", []):
        options += ["--cap-add", cap]
    seccomp = (context.get("seccompProfile") or {}).get("type")
    if seccomp == "Unconfined":
        options += ["--security-opt", "seccomp=unconfined"]
    elif seccomp not in (None, "RuntimeDefault"):
        raise PodSpecError(f"container {container['name']}: seccompProfile {seccomp} is not translated")
    # RuntimeDefault (and no profile, which the kubelet also runs as the runtime's default) is podman's own.

    for mount in container.get("volumeMounts", []):
        source = volumes.get(mount["name"])
        if source is None:
            raise PodSpecError(f"container {container['name']}: volumeMount {mount['name']} names no volume")
        if "subPath" in mount:
            source = source / mount["subPath"]
        mode = "ro" if mount.get("readOnly") else "rw"
        options += ["--volume", f"{source}:{mount['mountPath']}:{mode}"]
    options += list(extra_mounts)

    env = environment(container, node_name, rewrite)
    env.update(extra_env or {})
    for key, value in env.items():
        options += ["--env", f"{key}={value}"]
    if "workingDir" in container:
        options += ["--workdir", container["workingDir"]]
    command: list[str] = []
    if "command" in container:
        options += ["--entrypoint", container["command"][0]]
        command += [expand(part, env) for part in container["command"][1:]]
    command += [expand(arg, env) for arg in container.get("args", [])]
    return Run(tuple(options), tuple(command), env)
