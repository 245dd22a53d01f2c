"""Alert fingerprints exactly as Alertmanager computes them (pure).

Alertmanager's alert fingerprint is prometheus/common `model.LabelSet.Fingerprint()`:
FNV-1a 64 over the label names in byte order, each written as
`name 0xff value 0xff`, printed as `%016x`. Generic alerts get the same value an
Alertmanager would give them, so both sources agree on identity.
"""

from __future__ import annotations

from collections.abc import Mapping

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = b"\xff"  # cannot occur in UTF-8, so `a=bc` and `ab=c` hash apart

# Go returns the bare offset basis for an empty set (`emptyLabelSignature`).
EMPTY_FINGERPRINT = f"{_FNV64_OFFSET:016x}"


def fingerprint(labels: Mapping[str, str]) -> str:
    """The Alertmanager fingerprint of a label set: 16 lowercase hex digits."""
    if not labels:
        return EMPTY_FINGERPRINT
    parts: list[bytes] = []
    # Go sorts names as bytes; code point order of str is the same as UTF-8 byte order.
    for name in sorted(labels):
        parts += (_utf8(name), _SEPARATOR, _utf8(labels[name]), _SEPARATOR)
    return f"{fnv1a_64(b''.join(parts)):016x}"


def fnv1a_64(data: bytes) -> int:
    """FNV-1a, 64 bit (Go's `hash/fnv.New64a`)."""
    value = _FNV64_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV64_PRIME) & _MASK64
    return value


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (possible from Python's json module): Go's decoder turns it
        # into U+FFFD, so hash what Alertmanager would have hashed.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
