"""Alert fingerprints exactly as Alertmanager computes them (pure).

Alertmanager's alert fingerprint is prometheus/common `model.LabelSet.Fingerprint()`:
FNV-1a 64 over the label names in byte order, each written as
`name 0xff value 0xff`, printed as `%016x`. Generic alerts get the same value an
Alertmanager would give them, so both sources agree on identity.

Where the package was built with a C compiler, `_fnv` (compiled from `_fnv.c`)
computes the same values over ten times faster; the Python code here is the
reference, the fallback, and decides the label sets `_fnv` leaves to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType

_compiled: ModuleType | None
try:
    from itsmd.correlation import _fnv as _compiled
except ImportError:  # built without a C compiler: the Python code alone, same values
    _compiled = None

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = b"\xff"  # cannot occur in UTF-8, so `a=bc` and `ab=c` hash apart

# Go returns the bare offset basis for an empty set (`emptyLabelSignature`).
EMPTY_FINGERPRINT = f"{_FNV64_OFFSET:016x}"


def fingerprint(labels: Mapping[str, str]) -> str:
    """The Alertmanager fingerprint of a label set: 16 lowercase hex digits."""
    if _compiled is not None and (value := _compiled.fingerprint(labels)) is not None:
        return str(value)
    return python_fingerprint(labels)


def python_fingerprint(labels: Mapping[str, str]) -> str:
    """`fingerprint` without the compiled code."""
    return f"{fnv1a_64(_signature(labels)):016x}"


def fingerprints(label_sets: Sequence[Mapping[str, str]]) -> list[str]:
    """`fingerprint` of each label set (without the compiled code, those of a webhook's
    alerts computed side by side: `fnv1a_64_many`)."""
    if _compiled is None:
        return python_fingerprints(label_sets)
    label_sets = label_sets if isinstance(label_sets, list) else list(label_sets)
    values: list[str | None] = _compiled.fingerprints(label_sets)
    return [
        python_fingerprint(labels) if value is None else value
        for labels, value in zip(label_sets, values, strict=True)
    ]


def python_fingerprints(label_sets: Sequence[Mapping[str, str]]) -> list[str]:
    """`fingerprints` without the compiled code."""
    return [f"{value:016x}" for value in fnv1a_64_many([_signature(s) for s in label_sets])]


def _signature(labels: Mapping[str, str]) -> bytes:
    """What the fingerprint hashes: `name 0xff value 0xff` per label, by name (empty for
    no labels, whose hash is the bare offset basis)."""
    parts: list[bytes] = []
    # Go sorts names as bytes; code point order of str is the same as UTF-8 byte order.
    for name in sorted(labels):
        parts += (_utf8(name), _SEPARATOR, _utf8(labels[name]), _SEPARATOR)
    return b"".join(parts)


def fnv1a_64(data: bytes) -> int:
    """FNV-1a, 64 bit (Go's `hash/fnv.New64a`)."""
    value = _FNV64_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV64_PRIME) & _MASK64
    return value


# Side by side: the hashes of several inputs as lanes of one Python integer, one lane of
# 128 bits each, so that each step (xor a byte, multiply by the prime, keep 64 bits) is
# three integer operations for all inputs at once instead of three per input. A lane's
# 64-bit value times the 41-bit prime stays below 2**105: lanes never carry into each
# other. Inputs go in groups of similar length: a group's buffer is its longest input
# times its size times 16 bytes (512 KiB at most). Longer inputs are hashed alone, and
# so are very short ones, for which the wide integers cost more than they save.
_LANE = 16  # bytes
_GROUP = 32
_SIDE_BY_SIDE = range(24, 1025)  # bytes of one input (a real label set has 50 to 300)
_LANE_OFFSETS = int.from_bytes(_FNV64_OFFSET.to_bytes(8, "little") + bytes(8), "little")
_LANE_MASK = int.from_bytes(_MASK64.to_bytes(8, "little") + bytes(8), "little")


def fnv1a_64_many(datas: Sequence[bytes]) -> list[int]:
    """`fnv1a_64` of each input."""
    values = [0] * len(datas)
    grouped: list[int] = []
    alone: list[int] = []
    for i, data in enumerate(datas):
        (grouped if len(data) in _SIDE_BY_SIDE else alone).append(i)
    grouped.sort(key=lambda i: len(datas[i]))
    for start in range(0, len(grouped), _GROUP):
        group = grouped[start : start + _GROUP]
        if len(group) < 3:  # too few to gain from the wide integers
            alone += group
            continue
        for i, value in zip(group, _side_by_side([datas[i] for i in group]), strict=True):
            values[i] = value
    for i in alone:
        values[i] = fnv1a_64(datas[i])
    return values


def _side_by_side(datas: list[bytes]) -> list[int]:
    if not datas:
        return []
    lanes = len(datas)
    stride = lanes * _LANE  # bytes of one step: the n-th byte of every input
    longest = max(len(data) for data in datas)
    steps = bytearray(longest * stride)
    for lane, data in enumerate(datas):  # each input's bytes at its lane's lowest byte
        steps[lane * _LANE : lane * _LANE + len(data) * stride : stride] = data
    ends: dict[int, list[int]] = {}  # step -> the lanes whose input ends there
    for lane, data in enumerate(datas):
        ends.setdefault(len(data), []).append(lane)
    values = [_FNV64_OFFSET] * lanes  # an empty input's, kept
    mask = int.from_bytes(_LANE_MASK.to_bytes(_LANE, "little") * lanes, "little")
    state = int.from_bytes(_LANE_OFFSETS.to_bytes(_LANE, "little") * lanes, "little")
    for step in range(longest):
        byte = int.from_bytes(steps[step * stride : (step + 1) * stride], "little")
        state = ((state ^ byte) * _FNV64_PRIME) & mask
        for lane in ends.get(step + 1, ()):
            values[lane] = (state >> (lane * _LANE * 8)) & _MASK64
    return values


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (possible from Python's json module): Go's decoder turns it
        # into U+FFFD, so hash what Alertmanager would have hashed.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
