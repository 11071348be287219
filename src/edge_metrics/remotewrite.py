"""Prometheus remote write 1.0 on the wire: the snappy block format around a protobuf WriteRequest.

Pure Python on purpose: the collector's image is built from Debian packages and has no pip, and the gate
(gate.py) needs only the parts of the format a store accepts: labels and float samples. Decoding checks every
length against what is left and against the caller's bound before it allocates, so a malformed or hostile body
is a DecodeError naming the reason, never a traceback or a large allocation. Encoding writes snappy literals
only: valid for every decoder, and cheap where the bytes cross the pod's loopback.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import TypeVar

    _K = TypeVar("_K")
    _V = TypeVar("_V")

Labels = tuple[tuple[str, str], ...]
Point = tuple[int, float]
"""A sample: timestamp in milliseconds since the epoch, value."""

_DOUBLE = struct.Struct("<d")
_MAX_LITERAL = 1 << 32  # a snappy literal's length fits 4 bytes


class DecodeError(ValueError):
    """A body that is not a remote-write 1.0 request; the message says where and why."""


class Series:
    """One time series of a request: its labels (as sent) and its samples in the order sent."""

    __slots__ = ("labels", "points")

    def __init__(self, labels: Labels, points: list[Point]) -> None:
        self.labels = labels
        self.points = points

    def __repr__(self) -> str:
        return f"Series({self.labels!r}, {self.points!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Series) and (self.labels, self.points) == (other.labels, other.points)

    __hash__ = None  # type: ignore[assignment]  # mutable points


class WriteRequest:
    """The series of a request, and how many exemplars and histograms it carried (the gate stores neither)."""

    __slots__ = ("series", "unsupported")

    def __init__(self, series: list[Series], unsupported: int) -> None:
        self.series = series
        self.unsupported = unsupported


# -- snappy (block format: https://github.com/google/snappy/blob/main/format_description.txt) -----------------


def uncompressed_length(data: bytes) -> int:
    """The length a snappy block says it decodes to: checked against a bound before decode allocates it."""
    length, _ = _varint(data, 0, "snappy length")
    return length


def snappy_decode(data: bytes, max_length: int) -> bytes:
    length, pos = _varint(data, 0, "snappy length")
    if length > max_length:
        raise DecodeError(f"snappy: decodes to {length} bytes, more than the limit of {max_length}")
    out = bytearray()
    end = len(data)
    while pos < end:
        tag = data[pos]
        kind = tag & 3
        if kind == 0:  # literal
            size = tag >> 2
            if size < 60:
                pos += 1
            else:
                extra = size - 59
                if pos + 1 + extra > end:
                    raise DecodeError(f"snappy: literal length cut off at byte {pos}")
                size = int.from_bytes(data[pos + 1 : pos + 1 + extra], "little")
                pos += 1 + extra
            size += 1
            if pos + size > end:
                raise DecodeError(f"snappy: literal of {size} bytes at byte {pos} runs past the end")
            if len(out) + size > length:
                raise DecodeError("snappy: more data than the stated length")
            out += data[pos : pos + size]
            pos += size
            continue
        if kind == 1:
            if pos + 2 > end:
                raise DecodeError(f"snappy: copy cut off at byte {pos}")
            size = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | data[pos + 1]
            pos += 2
        else:
            width = 2 if kind == 2 else 4
            if pos + 1 + width > end:
                raise DecodeError(f"snappy: copy cut off at byte {pos}")
            size = (tag >> 2) + 1
            offset = int.from_bytes(data[pos + 1 : pos + 1 + width], "little")
            pos += 1 + width
        if offset == 0 or offset > len(out):
            raise DecodeError(f"snappy: copy offset {offset} outside the {len(out)} bytes decoded so far")
        if len(out) + size > length:
            raise DecodeError("snappy: more data than the stated length")
        start = len(out) - offset
        if size <= offset:
            out += out[start : start + size]
        else:  # overlapping: the pattern repeats
            chunk = out[start:]
            while size > 0:
                piece = chunk[:size]
                out += piece
                size -= len(piece)
    if len(out) != length:
        raise DecodeError(f"snappy: decoded {len(out)} bytes, the header says {length}")
    return bytes(out)


def snappy_encode(data: bytes) -> bytes:
    """Literals only (no search for copies): any snappy decoder reads it."""
    out = bytearray(_encode_varint(len(data)))
    for start in range(0, len(data), _MAX_LITERAL):
        chunk = data[start : start + _MAX_LITERAL]
        size = len(chunk) - 1
        if size < 60:
            out.append(size << 2)
        else:
            width = (size.bit_length() + 7) // 8
            out.append((59 + width) << 2)
            out += size.to_bytes(width, "little")
        out += chunk
    return bytes(out)


# -- protobuf (prometheus/prompb/remote.proto, types.proto) ----------------------------------------------------


def decode_write_request(data: bytes) -> WriteRequest:
    series: list[Series] = []
    unsupported = 0
    for field, wire, start, stop in _fields(data, 0, len(data), "WriteRequest"):
        if field == 1 and wire == 2:
            one, dropped = _decode_series(data, start, stop)
            series.append(one)
            unsupported += dropped
        # metadata (3) and unknown fields: nothing the store needs.
    return WriteRequest(series, unsupported)


def _decode_series(data: bytes, begin: int, end: int) -> tuple[Series, int]:
    labels: list[tuple[str, str]] = []
    points: list[Point] = []
    dropped = 0
    for field, wire, start, stop in _fields(data, begin, end, "TimeSeries"):
        if field == 1 and wire == 2:
            labels.append(_decode_label(data, start, stop))
        elif field == 2 and wire == 2:
            points.append(_decode_sample(data, start, stop))
        elif field in (3, 4):  # exemplars, native histograms
            dropped += 1
    return Series(tuple(labels), points), dropped


# A node sends the same series in every request: their labels' bytes decode and encode the same each time, and
# the gate's CPU under load went mostly to doing that again (a backlog drained no faster than the node wrote).
# Bounded: emptied when full, so a node sending ever new series (a series bomb) only loses the speed-up.
_CACHE_ENTRIES = 200_000
_decoded_labels: dict[bytes, tuple[str, str]] = {}
_encoded_labels: dict[tuple[tuple[str, str], ...], bytes] = {}


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    """`value`, kept in `cache` under `key`; a full cache is emptied first, so that it stays bounded."""
    if len(cache) >= _CACHE_ENTRIES:
        cache.clear()
    cache[key] = value
    return value


def _decode_label(data: bytes, begin: int, end: int) -> tuple[str, str]:
    raw = data[begin:end]
    known = _decoded_labels.get(raw)
    if known is not None:
        return known
    return _remember(_decoded_labels, raw, _decode_label_fields(data, begin, end))


def _decode_label_fields(data: bytes, begin: int, end: int) -> tuple[str, str]:
    name = value = ""
    for field, wire, start, stop in _fields(data, begin, end, "Label"):
        if wire != 2:
            continue
        try:
            text = data[start:stop].decode()
        except UnicodeDecodeError:
            raise DecodeError(f"Label at byte {begin}: not UTF-8") from None
        if field == 1:
            name = text
        elif field == 2:
            value = text
    return name, value


def _decode_sample(data: bytes, begin: int, end: int) -> Point:
    value = 0.0
    timestamp = 0
    pos = begin
    while pos < end:
        key, pos = _varint(data, pos, "Sample field")
        field, wire = key >> 3, key & 7
        if wire == 1:
            if pos + 8 > end:
                raise DecodeError(f"Sample at byte {begin}: double cut off")
            if field == 1:
                value = _DOUBLE.unpack_from(data, pos)[0]
            pos += 8
        elif wire == 0:
            number, pos = _varint(data, pos, "Sample field")
            if field == 2:
                timestamp = number - (1 << 64) if number >= 1 << 63 else number
        else:
            pos = _skip(data, pos, wire, end, "Sample")
    if pos != end:
        raise DecodeError(f"Sample at byte {begin}: runs past its length")
    return timestamp, value


def _fields(data: bytes, pos: int, end: int, message: str) -> Iterable[tuple[int, int, int, int]]:
    """(field number, wire type, start, stop) of each field; for a varint or fixed field start..stop is its value."""
    while pos < end:
        key, pos = _varint(data, pos, f"{message} field key")
        field, wire = key >> 3, key & 7
        if wire == 2:
            size, pos = _varint(data, pos, f"{message} field {field} length")
            if pos + size > end:
                raise DecodeError(f"{message} field {field} at byte {pos}: {size} bytes, more than is left")
            yield field, wire, pos, pos + size
            pos += size
        else:
            start = pos
            pos = _skip(data, pos, wire, end, message)
            yield field, wire, start, pos


def _skip(data: bytes, pos: int, wire: int, end: int, message: str) -> int:
    if wire == 0:
        return _varint(data, pos, f"{message} varint")[1]
    if wire in (1, 5):
        size = 8 if wire == 1 else 4
        if pos + size > end:
            raise DecodeError(f"{message} at byte {pos}: fixed field cut off")
        return pos + size
    if wire == 2:
        size, pos = _varint(data, pos, f"{message} length")
        if pos + size > end:
            raise DecodeError(f"{message} at byte {pos}: {size} bytes, more than is left")
        return pos + size
    raise DecodeError(f"{message} at byte {pos}: wire type {wire} is not protobuf")


def _varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    result = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise DecodeError(f"{what} at byte {pos}: cut off")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError(f"{what} at byte {pos}: varint longer than 10 bytes")


def encode_write_request(series: Iterable[tuple[Labels, Sequence[Point]]]) -> bytes:
    out = bytearray()
    for labels, points in series:
        body = bytearray(_encode_labels(labels))
        for timestamp, number in points:
            sample = b"\x09" + _DOUBLE.pack(number) + b"\x10" + _encode_varint(timestamp & ((1 << 64) - 1))
            body += _bytes_field(2, sample)
        out += _bytes_field(1, bytes(body))
    return bytes(out)


def _encode_labels(labels: Labels) -> bytes:
    known = _encoded_labels.get(labels)
    if known is not None:
        return known
    out = bytearray()
    for name, value in labels:
        out += _bytes_field(1, _bytes_field(1, name.encode()) + _bytes_field(2, value.encode()))
    return _remember(_encoded_labels, labels, bytes(out))


def _bytes_field(field: int, payload: bytes) -> bytes:
    return _encode_varint(field << 3 | 2) + _encode_varint(len(payload)) + payload


def _encode_varint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)
