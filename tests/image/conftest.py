from __future__ import annotations

from pathlib import Path

import pytest

from tests.image.engine import Podman, archive, built


@pytest.fixture(scope="session")
def image_out() -> Path:
    return built()


@pytest.fixture(scope="session")
def podman() -> Podman:
    return Podman()


@pytest.fixture(scope="session")
def amd64_image(image_out: Path, podman: Podman) -> str:
    """The linux/amd64 image, loaded from its archive (what a user ships), by ID."""
    return podman.load(archive("amd64"))
