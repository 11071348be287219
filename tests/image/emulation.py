"""Foreign-architecture programs run here under qemu-user, registered with binfmt_misc inside a user namespace
the test creates: since Linux 6.7 each user namespace has its own binfmt_misc, so the registration changes
nothing on the host and ends with the namespace. Also: an image's root filesystem unpacked from its archive,
the simulator's preload library cross-built for it, and Debian's node_exporter and vmagent for the
architecture (the versions deploy/components.versions pins), unpacked into the git-ignored cache."""

from __future__ import annotations

import functools
import hashlib
import platform
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.helpers import REPO
from tests.image.engine import archive
from tests.image.oci import Archive

CACHE = (REPO / ".cache" / "image").resolve()
VERSIONS = REPO / "deploy" / "components.versions"
QEMU = {"arm64": "aarch64", "armhf": "arm"}
CROSS_CC = {"arm64": "aarch64-linux-gnu-gcc", "armhf": "arm-linux-gnueabihf-gcc"}
PRELOAD = "/usr/lib/edge-i2c-sim/libi2csim.so"


class EmulationUnavailable(AssertionError):
    """This machine cannot run the foreign architecture (kernel, qemu-user-static, cross compiler)."""


def kernel_has_binfmt_per_user_namespace() -> bool:
    match = re.match(r"(\d+)\.(\d+)", platform.release())
    if match is None:
        return False
    return (int(match.group(1)), int(match.group(2))) >= (6, 7)


def binfmt_line(arch: str) -> str:
    """The register line for qemu-ARCH-static, from Debian's own binfmt description (F: the interpreter is
    opened at registration, so it works in a chroot that does not hold it)."""
    qemu = QEMU[arch]
    fields = dict(line.split(" ", 1) for line in Path(f"/usr/share/binfmts/qemu-{qemu}").read_text().splitlines()
                  if " " in line)
    interpreter = f"/usr/bin/qemu-{qemu}-static"
    return f":qemu-{qemu}:M:{fields.get('offset', '0')}:{fields['magic']}:{fields['mask']}:{interpreter}:F"


def check_available(arch: str) -> None:
    if not kernel_has_binfmt_per_user_namespace():
        raise EmulationUnavailable(f"kernel {platform.release()}: binfmt_misc per user namespace needs Linux >= 6.7")
    if arch not in QEMU:
        return
    for tool in (f"qemu-{QEMU[arch]}-static", CROSS_CC[arch], "unshare"):
        if shutil.which(tool) is None:
            raise EmulationUnavailable(f"{tool} missing: `make image-test-tools` installs it")


def in_namespace(arch: str, argv: Sequence[str], *, chroot: Path | None = None,
                 binds: Sequence[tuple[Path, str]] = ()) -> list[str]:
    """argv run in a new user, mount and PID namespace with ARCH's emulator registered there (none for this
    machine's own architecture); with `chroot`, inside that root filesystem (with /dev and /proc, and
    `binds` as host dir -> path)."""
    steps = ["true"]
    if arch in QEMU:
        steps = ["mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc",
                 f"printf '%s' {shlex.quote(binfmt_line(arch))} >/proc/sys/fs/binfmt_misc/register"]
    command = shlex.join(argv)
    if chroot is not None:
        steps += [f"mount --rbind /dev {shlex.quote(str(chroot / 'dev'))}",
                  f"mount -t proc proc {shlex.quote(str(chroot / 'proc'))}"]
        for source, target in binds:
            steps.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(chroot) + target)}")
        command = f"chroot {shlex.quote(str(chroot))} {command}"
    script = " && ".join([*steps, f"exec {command}"])
    return ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
            "bash", "-c", script]


def rootfs(arch: str, destination: Path) -> Path:
    """The image's filesystem from its archive, with the simulator's library built for it and the mount points
    the namespace needs."""
    (image,) = Archive(archive(arch)).images()
    Archive(archive(arch)).extract(image, destination)
    for directory in ("dev", "proc", "run/edge-i2c-sim", "var/lib/node-exporter/textfile"):
        (destination / directory).mkdir(parents=True, exist_ok=True)
    library = destination / PRELOAD.lstrip("/")
    library.parent.mkdir(parents=True, exist_ok=True)
    sources = sorted((REPO / "sim").glob("*.c"))
    subprocess.run([CROSS_CC.get(arch, "cc"), "-shared", "-fPIC", "-O2", "-o", str(library),
                    *map(str, sources), "-ldl", "-lpthread"], check=True, capture_output=True, timeout=120)
    return destination


def _mirror() -> str:
    """The Debian mirror this machine's apt uses (the packages come from where the system's do)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file():
            match = re.search(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", path.read_text(), re.M)
            if match:
                return match.group(1)
    raise EmulationUnavailable("no Debian mirror in /etc/apt: cannot fetch the foreign components")


def _pins(packages: Sequence[str]) -> dict[str, tuple[str, str]]:
    pins = {}
    for line in VERSIONS.read_text().splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0] == "current" and fields[2] in packages:
            pins[fields[2]] = (fields[1], fields[3])
    return pins


@functools.cache
def components(arch: str) -> dict[str, Path]:
    """Debian's node_exporter and vmagent for ARCH, at deploy/components.versions' pins, unpacked once into
    .cache/image/components-ARCH (private apt state; the system's apt is not touched)."""
    pins = _pins(["prometheus-node-exporter", "victoria-metrics"])
    root = CACHE / f"components-{arch}"
    stamp = root / ".complete"
    want = hashlib.sha256(repr(sorted(pins.items())).encode()).hexdigest()
    found = {"NODE_EXPORTER_BIN": root / "usr/bin/prometheus-node-exporter", "VMAGENT_BIN": root / "usr/bin/vmagent"}
    if stamp.exists() and stamp.read_text() == want:
        return found
    shutil.rmtree(root, ignore_errors=True)
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    debs.chmod(0o777)  # apt's download sandbox user writes here
    for suite in sorted({suite for suite, _ in pins.values()}):
        state = CACHE / f"apt-{suite}"
        for directory in ("state/lists/partial", "cache/archives/partial", "none"):
            (state / directory).mkdir(parents=True, exist_ok=True)
        (state / "state" / "status").touch()
        (state / "sources.list").write_text(
            f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {_mirror()} {suite} main\n")
        options = [f"-oDir::Etc::SourceList={state}/sources.list", f"-oDir::Etc::SourceParts={state}/none",
                   f"-oDir::State={state}/state", f"-oDir::State::Status={state}/state/status",
                   f"-oDir::Cache={state}/cache", f"-oAPT::Architectures={arch}", "-oDebug::NoLocking=1"]
        subprocess.run(["apt-get", *options, "update", "-qq"], check=True, capture_output=True, timeout=600)
        wanted = [f"{name}:{arch}={version}" for name, (s, version) in pins.items() if s == suite]
        missing = [w for w in wanted if not list(debs.glob(f"{w.split(':')[0]}_*_{arch}.deb"))]
        if missing:
            subprocess.run(["apt-get", *options, "download", "-qq", *missing], cwd=debs, check=True,
                           capture_output=True, timeout=900)
    for name, (_, version) in pins.items():
        deb = debs / f"{name}_{version.split(':')[-1]}_{arch}.deb"
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=300)
    stamp.write_text(want)
    return found


def environment(**extra: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8", **extra}


