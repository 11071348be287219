"""A node's remote-write bodies, built fast enough for hundreds of simulated nodes on a shared machine.

vmagent sends snappy-compressed bodies with back references (copies); the gate decodes them in pure Python, one
loop turn per literal or copy, so a literal-only body (remotewrite.snappy_encode) would understate the gate's
cost. A Template is compressed once, greedily, with every sample's timestamp kept as its own literal that no copy
reads from: a body for any timestamp is then the template's pieces joined with that timestamp's bytes, and the
element streams of several templates (a flush holding several scrapes, a backlog block) join into one body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_metrics.remotewrite import Labels, _encode_varint, encode_write_request

# Timestamps in ms from 2^35 (1971) to 2^42 (2109) are 6-byte varints: one slot width fits every run.
SLOT_WIDTH = 6
_SENTINEL = (1 << 41) + 0x5A5A5A5A  # a 6-byte varint unlikely to occur in label text
_MIN_MATCH = 4
_MAX_COPY = 64  # a 2-byte-offset copy's longest
_MAX_OFFSET = 65535


@dataclass(frozen=True, slots=True)
class Template:
    """One request's series (one sample each, one timestamp for all: a scrape, or a collector run's readings)."""

    pieces: tuple[bytes, ...]  # the snappy element stream, split where each timestamp goes
    raw_length: int  # bytes of the protobuf it decodes to
    samples: int


def stamp(ms: int) -> bytes:
    data = _encode_varint(ms)
    if len(data) != SLOT_WIDTH:
        raise ValueError(f"timestamp {ms} ms is not a {SLOT_WIDTH}-byte varint")
    return data


def template(series: Sequence[tuple[Labels, float]]) -> Template:
    raw = encode_write_request((labels, [(_SENTINEL, value)]) for labels, value in series)
    marker = b"\x10" + stamp(_SENTINEL)  # field 2 (timestamp, varint) of a Sample
    slots, start = [], 0
    while (found := raw.find(marker, start)) >= 0:
        slots.append(found + 1)
        start = found + len(marker)
    if len(slots) != len(series):
        raise ValueError(f"{len(slots)} timestamp slots for {len(series)} series")
    return Template(tuple(compress(raw, slots)), len(raw), len(series))


def body(parts: Sequence[tuple[Template, int]]) -> bytes:
    """One snappy block of every (template, timestamp ms) in order: a single WriteRequest (protobuf messages
    concatenate into one, their repeated fields appended)."""
    length = sum(t.raw_length for t, _ in parts)
    return _encode_varint(length) + b"".join(stamp(ms).join(t.pieces) for t, ms in parts)


def compress(data: bytes, slots: Sequence[int]) -> list[bytes]:
    """Greedy snappy element stream of `data`; piece k ends with the tag of slot k's literal, whose bytes the
    caller puts between piece k and piece k+1. Neither a copy's source nor its target overlaps a slot."""
    forbidden = {s + i for s in slots for i in range(SLOT_WIDTH)}
    table: dict[bytes, int] = {}
    pieces: list[bytes] = []
    out = bytearray()
    literal_from = pos = 0
    bounds = [*slots, len(data)]
    for bound in bounds:
        while pos < bound:
            match = 0
            if pos + _MIN_MATCH <= bound:
                key = data[pos : pos + _MIN_MATCH]
                candidate = table.get(key)
                table[key] = pos
                if candidate is not None and pos - candidate <= _MAX_OFFSET:
                    while (pos + match < bound and match < _MAX_COPY and candidate + match not in forbidden
                           and data[candidate + match] == data[pos + match]):
                        match += 1
            if match < _MIN_MATCH:
                pos += 1
                continue
            _literal(out, data[literal_from:pos])
            offset = pos - candidate  # type: ignore[operator]  # set whenever match > 0
            out.append(((match - 1) << 2) | 2)
            out += offset.to_bytes(2, "little")
            pos += match
            literal_from = pos
        _literal(out, data[literal_from:pos])
        if bound < len(data):
            out.append((SLOT_WIDTH - 1) << 2)  # the slot's literal tag; its bytes are the timestamp
            pieces.append(bytes(out))
            out = bytearray()
            pos = literal_from = bound + SLOT_WIDTH
    pieces.append(bytes(out))
    return pieces


def _literal(out: bytearray, chunk: bytes) -> None:
    for start in range(0, len(chunk), 65536):
        part = chunk[start : start + 65536]
        size = len(part) - 1
        if size < 60:
            out.append(size << 2)
        elif size < 256:
            out += bytes((60 << 2, size))
        else:
            out.append(61 << 2)
            out += size.to_bytes(2, "little")
        out += part
