"""Run a rendered pod spec as local processes, laid out the way the kubelet lays out a pod.

What is emulated, and how faithfully:
- ConfigMap volumes: the kubelet's atomic writer layout, a `..<timestamp>` directory holding the files,
  `..data` -> that directory, and one `key -> ..data/key` symlink per key. An update writes a new
  timestamped directory and renames a new `..data` symlink over the old one, as the kubelet does.
  A volume only one container mounts has the absolute paths in its data moved below that container's
  root like its args (a config naming a file of another mount, e.g. prometheus.yml's CA file).
  A `subPath` mount is a copy taken at container start: like the real one, it never sees an update.
- Secret volumes: laid out like ConfigMap volumes (with `items` projecting keys to paths) from the
  Secrets the test passes in, as an operator would have created them (they are never in the manifests).
- emptyDir and PersistentVolumeClaim volumes: temporary directories (`medium: Memory` on a tmpfs when the
  caller gives one, as bench/pod does to count disk writes). hostPath volumes: the directory
  the test says the node was provisioned with (`host_paths`; type `Directory` must exist there, as the
  kubelet checks, `DirectoryOrCreate` is created), else the machine's own path when every
  mount of it is read-only (this machine plays the node), a temporary directory when a container may
  write to it (a test never writes into the machine's /var/lib).
- Each container gets its own root directory with every volumeMount placed at its mountPath, and
  every absolute path in its args, env and probe is moved below that root. A path that is under no
  volumeMount is an error: in the real pod it would point into the image, where nothing is shared.
- `$(VAR)` in args and env is expanded from the container's env, as Kubernetes does.
- `fieldRef: spec.nodeName` is the fake node's name.
- Ports: every pod here shares this machine's one network namespace (the DaemonSet is hostNetwork),
  so each declared containerPort moves to a free loopback port, and every `:PORT` listen address or
  loopback target in args, env and ConfigMap data moves with it. A flag or a config that uses a port
  no container declares keeps it, and then nothing answers there: the mismatch shows as a failure.
- Services: `name[.namespace[.svc[.cluster.local]]]:port` becomes the loopback port of the pod the
  Service selects, through its targetPort. A Service that selects no workload here is an error, and
  so is any URL host left pointing off this machine (tests send traffic to loopback only).
- Images: a table maps each image (without tag) to the local program standing in for its entrypoint.
  A container that overrides `command` is refused: the entrypoint is part of what is mapped.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import Processes, free_port

Obj = dict[str, Any]


@dataclass(frozen=True)
class LocalImage:
    """The local stand-in for an image: argv replacing its entrypoint, env the image would provide."""

    entrypoint: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


class PodSpecError(AssertionError):
    """The pod spec cannot work as written (unmapped path, unknown Service, unsupported field)."""


class ConfigMapVolume:
    """A ConfigMap volume directory as the kubelet's atomic writer maintains it."""

    def __init__(self, directory: Path, data: Mapping[str, str]) -> None:
        self.directory = directory
        directory.mkdir(parents=True)
        self._keys: set[str] = set()
        self.update(data)

    def update(self, data: Mapping[str, str]) -> None:
        """Write `data` into a new timestamped directory and swap `..data` to it atomically."""
        stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
        payload = self.directory / stamp
        payload.mkdir()
        for key, value in data.items():
            (payload / key).write_text(value)
        data_link = self.directory / "..data"
        old = os.readlink(data_link) if data_link.is_symlink() else None
        tmp_link = self.directory / "..data_tmp"
        tmp_link.symlink_to(stamp)
        os.rename(tmp_link, data_link)
        for key in data:
            if key not in self._keys:
                (self.directory / key).symlink_to(Path("..data") / key)
        for key in self._keys - set(data):
            (self.directory / key).unlink()
        self._keys = set(data)
        if old is not None:
            shutil.rmtree(self.directory / old)


def rebase_paths(text: str, mount_paths: Sequence[str], rootfs: Path) -> str:
    """Every absolute path in `text` under one of `mount_paths` moved below `rootfs`."""
    if not mount_paths:
        return text
    alternatives = "|".join(re.escape(p) for p in sorted(mount_paths, key=len, reverse=True))
    # A path stands alone, or follows file:// (VictoriaMetrics' flag values read from files).
    return re.sub(
        rf"(?:(?<=file://)|(?<![\w.:/-]))(?:{alternatives})(?=/|$|[\s\"',;])",
        lambda m: str(rootfs) + m.group(0),
        text,
    )


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, `$$` escapes, the rest stays."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, text)


class Node:
    """A fake node: a root directory, a node name, ports and Services mapped to loopback."""

    def __init__(
        self,
        root: Path,
        name: str,
        objects: list[Obj],
        images: Mapping[str, LocalImage],
        *,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        config_maps: Mapping[str, Mapping[str, str]] | None = None,
        host_paths: Mapping[str, Path] | None = None,
        memory_root: Path | None = None,
    ) -> None:
        """`secrets`, `config_maps`: objects the operator creates beside the manifests (docs/security.md);
        `memory_root`: a directory on a tmpfs for the `emptyDir: {medium: Memory}` volumes (else they are
        directories under `root` like every emptyDir), for a caller that measures what reaches the disk."""
        self.root = root
        self.memory_root = memory_root
        self.name = name
        self.objects = objects
        self.images = images
        self.secrets = dict(secrets or {})
        self.host_paths = dict(host_paths or {})
        self.config_maps = {o["metadata"]["name"]: dict(o.get("data", {})) for o in objects if o["kind"] == "ConfigMap"}
        self.config_maps.update({name: dict(data) for name, data in (config_maps or {}).items()})
        self.ports: dict[int, int] = {}
        for workload in self._workloads():
            for entry in workload["spec"]["template"]["spec"]["containers"]:
                for port in entry.get("ports", []):
                    self.ports.setdefault(int(port["containerPort"]), free_port())
        self.services = self._service_routes()

    def _workloads(self) -> list[Obj]:
        return [o for o in self.objects if o["kind"] in ("DaemonSet", "Deployment", "StatefulSet")]

    def _service_routes(self) -> list[tuple[re.Pattern[str], str]]:
        routes = []
        for service in (o for o in self.objects if o["kind"] == "Service"):
            name = service["metadata"]["name"]
            namespace = service["metadata"].get("namespace", "default")
            selector = service["spec"].get("selector", {})
            backends = [
                w for w in self._workloads()
                if selector and selector.items() <= w["spec"]["template"]["metadata"].get("labels", {}).items()
            ]
            if len(backends) != 1:
                raise PodSpecError(f"Service {name} selects {len(backends)} workloads, expected 1")
            pod_spec = backends[0]["spec"]["template"]["spec"]
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                container_port = _resolve_port(pod_spec, target)
                host = (
                    rf"(?<![\w.-]){re.escape(name)}(?:\.{re.escape(namespace)}(?:\.svc(?:\.cluster\.local)?)?)?"
                    rf":{port['port']}(?!\d)"
                )
                routes.append((re.compile(host), f"127.0.0.1:{self.ports[container_port]}"))
        return routes

    def rewrite_network(self, text: str) -> str:
        """Service names and declared ports -> their loopback ports on this machine."""
        for pattern, replacement in self.services:
            text = pattern.sub(replacement, text)
        for old, new in self.ports.items():
            text = re.sub(
                rf"(?<![\w.-])(?:0\.0\.0\.0|127\.0\.0\.1|localhost|\[::\])?:{old}(?!\d)", f"127.0.0.1:{new}", text
            )
        return text

    def pod(self, workload_kind: str, workload_name: str) -> Pod:
        workload = next(
            w for w in self._workloads() if w["kind"] == workload_kind and w["metadata"]["name"] == workload_name
        )
        return Pod(self, f"{workload_name}-{self.name}", workload["spec"]["template"]["spec"])


def _resolve_port(pod_spec: Obj, target: int | str) -> int:
    for entry in pod_spec["containers"]:
        for port in entry.get("ports", []):
            if target in (port.get("name"), port["containerPort"]):
                return int(port["containerPort"])
    raise PodSpecError(f"targetPort {target!r} matches no containerPort of the selected pod")


class Pod:
    """One pod of a workload on the fake node: its volumes laid out, its containers startable."""

    def __init__(self, node: Node, name: str, spec: Obj) -> None:
        self.node = node
        self.name = name
        self.spec = spec
        self.root = node.root / name
        self.volumes: dict[str, Path] = {}
        self.config_map_volumes: dict[str, ConfigMapVolume] = {}
        mounts_by_volume: dict[str, list[Obj]] = {}
        users: dict[str, set[str]] = {}
        for entry in spec["containers"]:
            for mount in entry.get("volumeMounts", []):
                mounts_by_volume.setdefault(mount["name"], []).append(mount)
                users.setdefault(mount["name"], set()).add(entry["name"])
        # The one container that mounts a volume: its data's paths are that container's (see the header).
        self.owners = {
            volume: next(c for c in spec["containers"] if c["name"] in names)
            for volume, names in users.items()
            if len(names) == 1
        }
        for volume in spec.get("volumes", []):
            self._lay_out(volume, mounts_by_volume.get(volume["name"], []))

    def _lay_out(self, volume: Obj, mounts: list[Obj]) -> None:
        name = volume["name"]
        directory = self.root / "volumes" / name
        if "configMap" in volume:
            cm_name = volume["configMap"]["name"]
            if cm_name not in self.node.config_maps:
                raise PodSpecError(f"volume {name}: ConfigMap {cm_name} is not among the rendered objects")
            data = {k: self._rewrite_data(name, v) for k, v in self.node.config_maps[cm_name].items()}
            self.config_map_volumes[name] = ConfigMapVolume(directory, data)
            self.volumes[name] = directory
        elif "secret" in volume:
            secret_name = volume["secret"]["secretName"]
            if secret_name not in self.node.secrets:
                raise PodSpecError(f"volume {name}: Secret {secret_name} was not created")
            secret = self.node.secrets[secret_name]
            items = volume["secret"].get("items") or [{"key": key, "path": key} for key in secret]
            missing = [item["key"] for item in items if item["key"] not in secret]
            if missing:
                raise PodSpecError(f"volume {name}: Secret {secret_name} has no key {missing}")
            data = {item["path"]: self.node.rewrite_network(secret[item["key"]]) for item in items}
            self.config_map_volumes[name] = ConfigMapVolume(directory, data)
            self.volumes[name] = directory
        elif "hostPath" in volume and volume["hostPath"]["path"] in self.node.host_paths:
            self.volumes[name] = self._provisioned(volume)
        elif "emptyDir" in volume or "persistentVolumeClaim" in volume:
            if volume.get("emptyDir", {}).get("medium") == "Memory" and self.node.memory_root is not None:
                directory = self.node.memory_root / self.name / name
            directory.mkdir(parents=True)
            self.volumes[name] = directory
        elif "hostPath" in volume:
            host_path = Path(volume["hostPath"]["path"])
            if mounts and all(m.get("readOnly") for m in mounts):
                if not host_path.exists():
                    raise PodSpecError(f"volume {name}: hostPath {host_path} does not exist on this machine")
                self.volumes[name] = host_path
            else:
                directory.mkdir(parents=True)
                self.volumes[name] = directory
        else:
            raise PodSpecError(f"volume {name}: kind {sorted(volume)} is not emulated")

    def _provisioned(self, volume: Obj) -> Path:
        """The directory the test provisioned for a hostPath, checked against the volume's type as the kubelet
        checks it: `Directory` must exist (else the pod waits in ContainerCreating), `DirectoryOrCreate` is made."""
        host_path = volume["hostPath"]
        directory = self.node.host_paths[host_path["path"]]
        kind = host_path.get("type", "")
        if kind == "DirectoryOrCreate":
            directory.mkdir(parents=True, exist_ok=True)
        elif kind == "Directory" and not directory.is_dir():
            raise PodSpecError(f"volume {volume['name']}: hostPath {host_path['path']} (type Directory) does not "
                               "exist on the node: the kubelet leaves the pod in ContainerCreating")
        elif kind not in ("", "Directory", "DirectoryOrCreate"):
            raise PodSpecError(f"volume {volume['name']}: hostPath type {kind} is not emulated")
        return directory

    def update_config_map(self, volume: str, data: Mapping[str, str]) -> None:
        """A ConfigMap update as the kubelet delivers it to a directory mount: a `..data` swap."""
        self.config_map_volumes[volume].update({k: self._rewrite_data(volume, v) for k, v in data.items()})

    def _rewrite_data(self, volume: str, text: str) -> str:
        """ConfigMap data as its container reads it: network names to loopback and, for a volume that
        one container mounts, its absolute paths below that container's root."""
        text = self.node.rewrite_network(text)
        owner = self.owners.get(volume)
        if owner is None:
            return text
        mount_paths = [m["mountPath"].rstrip("/") or "/" for m in owner.get("volumeMounts", [])]
        return rebase_paths(text, mount_paths, self.root / "rootfs" / owner["name"])

    def container(self, name: str) -> Container:
        entry = next((c for c in self.spec["containers"] if c["name"] == name), None)
        if entry is None:
            raise PodSpecError(f"pod {self.name} has no container {name!r}")
        return Container(self, entry)


class Container:
    """A container's root directory (its mounts in place), env, argv and probe, all rewritten."""

    def __init__(self, pod: Pod, spec: Obj) -> None:
        self.pod = pod
        self.spec = spec
        self.name: str = spec["name"]
        self.rootfs = pod.root / "rootfs" / self.name
        self.rootfs.mkdir(parents=True)
        self.mount_paths: list[str] = []
        for mount in spec.get("volumeMounts", []):
            self._mount(mount)
        self.image = self._image()
        self.env = self._env()

    def _mount(self, mount: Obj) -> None:
        source = self.pod.volumes.get(mount["name"])
        if source is None:
            raise PodSpecError(f"container {self.name}: volumeMount {mount['name']} names no volume")
        target = self.rootfs / mount["mountPath"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if "subPath" in mount:
            resolved = (source / mount["subPath"]).resolve()
            if not resolved.exists():
                raise PodSpecError(f"container {self.name}: subPath {mount['subPath']} is not in {mount['name']}")
            shutil.copy(resolved, target)  # a snapshot: a real subPath mount never sees updates either
        else:
            target.symlink_to(source, target_is_directory=source.is_dir())
        self.mount_paths.append(mount["mountPath"].rstrip("/") or "/")

    def _image(self) -> LocalImage:
        if "command" in self.spec:
            raise PodSpecError(f"container {self.name}: `command` overrides the image entrypoint; not emulated")
        repository = self.spec["image"].rsplit(":", 1)[0]
        if repository not in self.pod.node.images:
            raise PodSpecError(f"container {self.name}: no local stand-in for image {self.spec['image']}")
        return self.pod.node.images[repository]

    def _env(self) -> dict[str, str]:
        declared: dict[str, str] = {}
        for item in self.spec.get("env", []):
            if "value" in item:
                declared[item["name"]] = expand(item["value"], declared)
            elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
                declared[item["name"]] = self.pod.node.name
            elif "configMapKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["configMapKeyRef"]
                data = self.pod.node.config_maps.get(ref["name"])
                if data is None or ref["key"] not in data:
                    raise PodSpecError(f"container {self.name}: env {item['name']}: no ConfigMap key {ref}")
                declared[item["name"]] = data[ref["key"]].strip()
            else:
                raise PodSpecError(f"container {self.name}: env {item['name']} source is not emulated: {item}")
        self.declared_env = declared
        return {key: self.rewrite(value) for key, value in declared.items()}

    def rewrite(self, text: str) -> str:
        """Network names and ports to loopback, absolute paths below this container's root."""
        text = rebase_paths(self.pod.node.rewrite_network(text), self.mount_paths, self.rootfs)
        self._check_confined(text)
        return text

    def _check_confined(self, text: str) -> None:
        for match in re.finditer(r"(?:^|[=\s\"'])(/[^\s\"',;]*)", text):
            if not match.group(1).startswith(str(self.pod.node.root)):
                raise PodSpecError(
                    f"container {self.name}: {match.group(1)!r} in {text!r} is under no volumeMount"
                )
        for match in re.finditer(r"://([^/:\"'\s]+)", text):
            if match.group(1) != "127.0.0.1":
                raise PodSpecError(f"container {self.name}: {text!r} points at {match.group(1)}, which is not here")

    def argv(self) -> list[str]:
        args = [self.rewrite(expand(arg, self.declared_env)) for arg in self.spec.get("args", [])]
        return [*self.image.entrypoint, *args]

    def process_env(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.rootfs), "LANG": "C.UTF-8"}
        env.update(self.image.env)
        env.update(self.env)
        return env

    def start(self, procs: Processes, log: Path) -> subprocess.Popen[bytes]:
        return procs.start(self.argv(), env=self.process_env(), cwd=self.rootfs, log=log)

    def run_liveness_probe(self) -> subprocess.CompletedProcess[str]:
        """The exec liveness probe, run as the kubelet would: in the container's env. (Kubernetes does
        not expand $(VAR) in probes, so neither does this.)"""
        probe = self.spec["livenessProbe"]["exec"]["command"]
        command = [self.rewrite(part) for part in probe]
        timeout = float(self.spec["livenessProbe"].get("timeoutSeconds", 1))
        return subprocess.run(
            command, env=self.process_env(), cwd=self.rootfs, capture_output=True, text=True,
            timeout=timeout, check=False,
        )

    def http_probe_url(self, kind: str) -> str:
        """Where the kubelet would send this container's httpGet probe of `kind` (e.g. livenessProbe):
        the pod's IP, which for a host-network pod is the node's, here loopback."""
        probe = self.spec[kind]["httpGet"]
        container_port = _resolve_port({"containers": [self.spec]}, probe["port"])
        return f"http://127.0.0.1:{self.pod.node.ports[container_port]}{probe.get('path', '/')}"
