"""The simulator's preload library: EDGE_I2C_SIM_LIB, what `make sim` built in a checkout, or a build of the C
sources shipped in the package, made at first use into the user's cache directory (an installed package has no
Makefile and no build/ directory)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PACKAGE_SOURCES = Path(__file__).resolve().parent / "csrc"  # the wheel's copy of sim/ (pyproject.toml)
REPO = Path(__file__).resolve().parents[3]  # src/edge_metrics/simulate/ -> the checkout, when there is one
CHECKOUT_SOURCES = REPO / "sim"
CHECKOUT_LIBRARY = REPO / "build" / "libi2csim.so"


class LibraryError(Exception):
    """No library, and none can be built here (no sources, no C compiler, a failed build)."""


def library_path() -> Path:
    configured = os.environ.get("EDGE_I2C_SIM_LIB")
    if configured:
        if not Path(configured).is_file():
            raise LibraryError(f"EDGE_I2C_SIM_LIB={configured}: no such file")
        return Path(configured).resolve()
    if CHECKOUT_LIBRARY.is_file():
        return CHECKOUT_LIBRARY.resolve()
    return cached_build(_sources())


def _sources() -> list[Path]:
    for directory in (PACKAGE_SOURCES, CHECKOUT_SOURCES):
        sources = sorted(directory.glob("*.c"))
        if sources:
            return sources
    raise LibraryError(f"the simulator's C sources are missing ({PACKAGE_SOURCES}): reinstall edge-metrics-collector")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edge-metrics"


def cached_build(sources: list[Path]) -> Path:
    """The library built from `sources`, named by their content: built once, rebuilt when they change."""
    digest = hashlib.sha256()
    for path in sorted({*sources, *sources[0].parent.glob("*.h")}):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    target = cache_dir() / f"libi2csim-{digest.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise LibraryError("no C compiler found (cc, gcc or clang on PATH, or $CC) to build the simulator's preload "
                           f"library into {target.parent}: install one (Debian: apt-get install gcc), or set "
                           "EDGE_I2C_SIM_LIB to a built libi2csim.so")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        result = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", temp, *map(str, sources), "-ldl",
                                 "-lpthread"], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LibraryError(f"building the simulator's preload library with {compiler} failed:\n"
                               f"{result.stderr.strip()}")
        os.replace(temp, target)  # concurrent first uses: each builds, the last rename wins, all are equal
    finally:
        Path(temp).unlink(missing_ok=True)
    return target
