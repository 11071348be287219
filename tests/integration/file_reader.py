"""A reader process, like node_exporter: opens and parses the metrics file in a tight loop while it is rewritten.

    python -m tests.integration.file_reader FILE STOP_FILE MODE [NAME...]

MODE `uniform`: every sample of a complete file carries the same value (the writer's version number).
MODE `names`: a complete file has every NAME. Prints one JSON line when STOP_FILE appears: reads, distinct
versions seen, torn reads and the first few reasons.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.helpers import parse_exposition
from tests.integration.support import complete_problem


def torn_reason(text: str, mode: str, names: list[str]) -> str | None:
    if mode == "names":
        return complete_problem(text, names)
    problem = complete_problem(text, ())
    if problem is not None:
        return problem
    values = set(parse_exposition(text).values())
    return None if len(values) == 1 else f"mixed versions {sorted(values)[:5]}"


def main(argv: list[str]) -> int:
    target, stop, mode, names = Path(argv[0]), Path(argv[1]), argv[2], argv[3:]
    reads = missing = torn = 0
    versions: set[int] = set()
    reasons: list[str] = []
    print("ready", flush=True)
    while not stop.exists():
        try:
            text = target.read_text()
        except FileNotFoundError:
            missing += 1
            continue
        reads += 1
        reason = torn_reason(text, mode, names)
        if reason is None:
            versions.add(hash(text))
        else:
            torn += 1
            if len(reasons) < 5:
                reasons.append(reason)
    print(json.dumps({"reads": reads, "missing": missing, "versions": len(versions), "torn": torn,
                      "reasons": reasons}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
