"""The collector image, tested without a Docker engine: the Dockerfile's own install commands replayed in
a clean build context and a fresh virtualenv, and the image layout it creates compared with what the
manifests mount and run. Not covered here (no engine on these machines): the apt step, the base
image, and the arm64 build; docs/kubernetes.md lists them."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.k8s.manifests import DOCKERFILE, container, dockerfile_entrypoint, dockerfile_instructions, find, rendered

pytestmark = pytest.mark.k8s

DOCKERIGNORE = REPO / ".dockerignore"


def run_commands() -> list[str]:
    return [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]


def pip_step(subcommand: str) -> list[str]:
    """The `pip <subcommand> ...` part of the Dockerfile's RUN lines, as argv."""
    for command in run_commands():
        for part in command.split("&&"):
            words = shlex.split(part)
            if words[:2] == ["pip", subcommand]:
                return words
    raise AssertionError(f"no `pip {subcommand}` in the Dockerfile")


def admitted_by_dockerignore(relative: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a directory match covers its files."""
    admitted = True
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            matched = any(fnmatch.fnmatch(p.rsplit("/", 1)[-1], pattern[3:]) for p in prefixes)
        else:
            matched = any(fnmatch.fnmatch(p, pattern) for p in prefixes)
        if matched:
            admitted = negate
    return admitted


def build_context(destination: Path) -> Path:
    """What `docker build .` would send: the repository filtered by .dockerignore (symlinks kept)."""
    for path in sorted(REPO.rglob("*")):
        relative = path.relative_to(REPO).as_posix()
        if relative.split("/", 1)[0] in (".git", ".venv", ".cache", "build") or not admitted_by_dockerignore(relative):
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            target.symlink_to(path.readlink())
        elif path.is_file():
            shutil.copy2(path, target)
    return destination


def copied_sources() -> list[str]:
    sources = []
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            sources.extend(shlex.split(args)[:-1])
    return sources


def sidecar() -> dict[str, object]:
    spec = find(rendered(), "DaemonSet", "node-exporter-arm64")["spec"]["template"]["spec"]
    return container(spec, "metric-sidecar")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding the wheel, both made by the Dockerfile's own pip commands."""
    root = tmp_path_factory.mktemp("image")
    context = build_context(root / "context")
    wheels = root / "wheels"
    wheel_argv = [a.replace("/wheels", str(wheels)) for a in pip_step("wheel")]
    subprocess.run([sys.executable, "-m", *wheel_argv], cwd=context, check=True, capture_output=True,
                   timeout=240)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install_argv = pip_step("install")
    built = sorted(wheels.glob("*.whl"))
    assert len(built) == 1, built
    argv = [a for a in install_argv if "/wheels" not in a] + [str(built[0])]
    subprocess.run([str(venv / "bin" / "python"), "-m", *argv], check=True, capture_output=True, timeout=240)
    return venv


class TestDockerfileInstall:
    """The Dockerfile's wheel build and install, replayed, give a working `edge-metrics` with its scripts."""

    def test_entrypoint_runs(self, installed: Path) -> None:
        result = subprocess.run([str(installed / "bin" / "edge-metrics"), "run", "--help"],
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        for variable in ("EDGE_CONFIG", "EDGE_OUTPUT", "NODE_NAME"):
            assert variable in result.stdout

    def test_bundled_scripts_are_installed_with_the_package(self, installed: Path) -> None:
        script = (
            "import json, pathlib, edge_metrics.cli as c; d = c.BUNDLED_DIR;"
            "print(json.dumps({p.name: p.read_text() for p in d.iterdir() if p.is_file()}))"
        )
        result = subprocess.run([str(installed / "bin" / "python"), "-c", script],
                                capture_output=True, text=True, timeout=30, check=True)
        bundled = json.loads(result.stdout)
        repo_scripts = REPO / "scripts"
        for path in [repo_scripts / "nodes.conf", *sorted(repo_scripts.glob("*.sh"))]:
            assert bundled.get(path.name) == path.read_text(), path.name

    def test_bundled_config_checks_clean(self, installed: Path) -> None:
        result = subprocess.run([str(installed / "bin" / "edge-metrics"), "check"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


class TestImageLayout:
    """What the manifests rely on inside the image is what the Dockerfile puts there."""

    def test_build_context_holds_everything_the_dockerfile_copies(self) -> None:
        for source in copied_sources():
            assert (REPO / source).exists(), source
            assert admitted_by_dockerignore(source), f".dockerignore drops {source}"
        assert not admitted_by_dockerignore(".venv/bin/python")
        assert not admitted_by_dockerignore("src/edge_metrics/__pycache__/cli.cpython-311.pyc")

    def test_entrypoint_is_the_installed_console_command(self, installed: Path) -> None:
        """The pod-spec run maps the same ENTRYPOINT onto .venv/bin; here it must exist in a clean install."""
        program, *_ = dockerfile_entrypoint()
        assert (installed / "bin" / program).exists(), program
        assert "command" not in sidecar(), "the DaemonSet relies on the image's entrypoint"

    def test_mount_points_and_output_match_the_manifest(self) -> None:
        spec = sidecar()
        env = {item["name"]: item.get("value") for item in spec["env"]}  # type: ignore[attr-defined]
        dockerfile = DOCKERFILE.read_text()
        assert f"EDGE_OUTPUT={env['EDGE_OUTPUT']}" in dockerfile
        created = set(re.findall(r"mkdir -p ([^&\n]+)", dockerfile)[0].split())
        # Present in any Debian base image: /tmp, and /etc/localtime (tzdata's link, replaced by the host's).
        base = {"/tmp", "/etc/localtime"}
        mounts = {m["mountPath"] for m in spec["volumeMounts"]}  # type: ignore[attr-defined]
        assert mounts <= created | base, mounts - created - base

    def test_image_has_what_the_probe_scripts_and_tz_need(self) -> None:
        installs = " ".join(c for c in run_commands() if "apt-get install" in c).split()
        assert {"bash", "i2c-tools", "tzdata"} <= set(installs)
        probe = sidecar()["livenessProbe"]["exec"]["command"]  # type: ignore[index]
        assert probe[0] == "bash"
        uses_i2c = any("i2cget" in p.read_text() for p in (REPO / "scripts").glob("*.sh"))
        assert uses_i2c, "the bundled scripts read I2C: the image must carry i2c-tools"

    def test_image_runs_as_non_root_by_default(self) -> None:
        users = [a for k, a in dockerfile_instructions() if k == "USER"]
        assert users and users[-1] not in ("0", "root")
