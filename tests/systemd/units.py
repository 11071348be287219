"""deploy/systemd's unit files as the tests read them: [Service] keys, Environment, ExecStart with systemd's own
expansion of specifiers (%H, %d, %S) and ${VAR}."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO

SYSTEMD_DIR = REPO / "deploy" / "systemd"
UNITS = ("edge-metrics-collector.service", "edge-metrics-vmagent.service")


@dataclass(frozen=True)
class Unit:
    path: Path
    service: dict[str, list[str]]  # key -> every value it is given, in order
    unit: dict[str, list[str]]  # the same for [Unit]

    @classmethod
    def read(cls, name: str) -> Unit:
        path = SYSTEMD_DIR / name
        text = re.sub(r"\\\n", " ", path.read_text())
        sections: dict[str, dict[str, list[str]]] = {"[Service]": {}, "[Unit]": {}}
        section = ""
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            if section in sections:
                key, _, value = line.partition("=")
                sections[section].setdefault(key, []).append(value)
        return cls(path, sections["[Service]"], sections["[Unit]"])

    def one(self, key: str) -> str:
        values = self.service[key]
        assert len(values) == 1, f"{self.path.name}: {key} given {len(values)} times"
        return values[0]

    def environment(self, specifiers: Mapping[str, str]) -> dict[str, str]:
        """Environment= as systemd sets it: specifiers replaced (EnvironmentFile= is the user's, not read here)."""
        env: dict[str, str] = {}
        for value in self.service.get("Environment", []):
            for item in shlex.split(value):
                name, _, text = item.partition("=")
                env[name] = _specifiers(text, specifiers)
        return env

    def exec_start(self, *, specifiers: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
        """ExecStart as systemd runs it: specifiers replaced, then ${VAR} from the environment."""
        argv = []
        for word in shlex.split(self.one("ExecStart")):
            word = _specifiers(word, specifiers)
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)], word))
        return argv


def _specifiers(text: str, specifiers: Mapping[str, str]) -> str:
    return re.sub(r"%([a-zA-Z%])", lambda m: specifiers[m.group(1)] if m.group(1) != "%" else "%", text)
