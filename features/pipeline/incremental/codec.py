"""A :class:`FeatureState` as bytes and back (what the service's store keeps per account).

zlib-compressed: a magic, the length of a JSON header (ids, the account row, the folded
scalars, each array's dtype and length), then the arrays' raw little-endian bytes. Reading
can never run code (no pickle); a blob of another format raises :class:`StateError` and
the caller rebuilds the state from the account's rows.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import fields
from typing import Any

import numpy as np

from features.pipeline.incremental.derive import StateError
from features.pipeline.incremental.state import FeatureState, Folded

# Bumped whenever what :func:`encode_state` writes or what a state means changes.
STATE_FORMAT = 1
_MAGIC = b"NBAF"
_STATE_ARRAYS = (
    "contact_created_ns",
    "contact_left_ns",
    "contact_listed",
    "tp_ns",
    "tp_channel",
    "tp_event",
    "tp_contact",
    "tp_content",
    "tp_value",
    "exp_ns",
    "exp_content",
    "stage_ns",
    "stage_phase",
)
_FOLDED_ARRAYS = tuple(f.name for f in fields(Folded) if f.type == "np.ndarray")
_FOLDED_SCALARS = tuple(f.name for f in fields(Folded) if f.type == "int")


def encode_state(state: FeatureState) -> bytes:
    """Returns ``state`` as bytes (see the module docstring)."""
    arrays: dict[str, np.ndarray] = {n: getattr(state, n) for n in _STATE_ARRAYS}
    arrays.update({f"folded.{n}": getattr(state.folded, n) for n in _FOLDED_ARRAYS})
    arrays["contact_listed"] = arrays["contact_listed"].astype(np.uint8)
    meta: dict[str, Any] = {
        "format": STATE_FORMAT,
        "account_id": state.account_id,
        "vocabulary": state.vocabulary,
        "account": state.account,
        "contact_ids": state.contact_ids,
        "contact_role": state.contact_role,
        "content_ids": state.content_ids,
        "folded": {n: int(getattr(state.folded, n)) for n in _FOLDED_SCALARS},
        "arrays": [],
    }
    body = []
    for name, array in arrays.items():
        a = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        meta["arrays"].append([name, a.dtype.str, len(a)])
        body.append(a.tobytes())
    header = json.dumps(meta, default=str).encode()
    return zlib.compress(_MAGIC + struct.pack("<I", len(header)) + header + b"".join(body), 1)


def decode_state(blob: bytes) -> FeatureState:
    """Returns the state :func:`encode_state` wrote; :class:`StateError` for anything else."""
    try:
        raw = zlib.decompress(blob)
        if raw[: len(_MAGIC)] != _MAGIC:
            raise ValueError("not a feature state")
        at = len(_MAGIC) + 4
        (size,) = struct.unpack("<I", raw[len(_MAGIC) : at])
        meta = json.loads(raw[at : at + size])
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {STATE_FORMAT}")
        at += size
        arrays: dict[str, np.ndarray] = {}
        for name, dtype, n in meta["arrays"]:
            kind = np.dtype(dtype)
            if kind.kind not in "fiu":
                raise ValueError(f"array {name!r} of dtype {dtype!r}")
            # a copy: states are updated by replacing arrays, never in place, but a frombuffer
            # view is read-only and would tie the blob's memory to the state
            arrays[name] = np.frombuffer(raw, dtype=kind, count=n, offset=at).astype(
                kind.newbyteorder("=")
            )
            at += kind.itemsize * n
        parts: dict[str, Any] = {n: int(v) for n, v in meta["folded"].items()}
        parts.update({n: arrays.pop(f"folded.{n}") for n in _FOLDED_ARRAYS})
        folded = Folded(**parts)
        listed = arrays.pop("contact_listed").astype(bool)
        return FeatureState(
            account_id=str(meta["account_id"]),
            vocabulary=str(meta["vocabulary"]),
            account=dict(meta["account"]),
            contact_ids=[str(c) for c in meta["contact_ids"]],
            contact_role=[None if r is None else str(r) for r in meta["contact_role"]],
            content_ids=[str(c) for c in meta["content_ids"]],
            contact_listed=listed,
            folded=folded,
            **arrays,
        )
    except (ValueError, KeyError, TypeError, struct.error, zlib.error) as exc:
        raise StateError(f"a stored feature state is unreadable: {exc}") from exc
