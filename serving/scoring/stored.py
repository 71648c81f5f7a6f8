"""An account's state as bytes, for the store's ``account_scores`` table, and back.

What is kept is exactly what answering needs (:class:`~serving.scoring.cache.AccountState`):
the phase probabilities, churn risk, every candidate's P(response), the addressees, the
reasons explained so far, the consumed history and, to explain an action not explained yet,
the account columns the served next-content model takes (``ScoringSetup.account_columns``).
Arrays are stored as float64/int64 (no rounding), so an answer from a stored state equals
one from the state computed fresh.

The format is zlib-compressed: a magic, the length of a JSON header (the small parts and
each array's dtype and length), then the arrays' raw bytes. Reading a row can never run
code, whoever wrote the database (no pickle), and costs a few hundred microseconds.
:func:`scoring_key` names the models, catalog and format a state depends on; a stored state
under another key is stale.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.arbitration import ACCOUNT_LEVEL, PreparedCandidates, Recent
from models.explain import Reason, WhyNow
from serving.model_set import ModelSet
from serving.scoring.answer import ScoringError
from serving.scoring.cache import AccountState, ipc_rows
from serving.scoring.predict import ScoringSetup

# Bumped whenever what :func:`encode_state` writes changes: older rows become stale.
STATE_FORMAT = 1
_MAGIC = b"NBAS"


def scoring_key(setup: ScoringSetup, models: ModelSet) -> str:
    """A short hash of what a stored state depends on besides the account's rows and time:
    the model versions, the catalog (candidates are indexed by its order), the phases, the
    next-content inputs and the format."""
    parts = {
        "format": STATE_FORMAT,
        "models": list(models.key),
        "catalog": [str(c) for c in setup.catalog.content_ids],
        "phases": list(setup.phases),
        "inputs": setup.account_columns(models),
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return digest[:32]


def _reasons_out(reasons: Sequence[Reason]) -> list[list[Any]]:
    return [[r.feature, r.value, r.contribution, r.text] for r in reasons]


def _reasons_in(rows: Sequence[Sequence[Any]]) -> tuple[Reason, ...]:
    return tuple(Reason(feature=f, value=v, contribution=float(c), text=t) for f, v, c, t in rows)


def _features_bytes(setup: ScoringSetup, models: ModelSet, state: AccountState) -> bytes:
    """The account columns of the served next-content model (all an unexplained action
    needs) as Arrow IPC (states computed for the store hold them so already)."""
    if state.features_ipc:
        return state.features
    return ipc_rows(setup.account_frame(models, state.feature_frame()))[0]


def encode_state(setup: ScoringSetup, models: ModelSet, state: AccountState) -> bytes:
    """Returns ``state``, computed with ``models``, as bytes (see the module docstring)."""
    c = state.candidates
    meta = {
        "format": STATE_FORMAT,
        "as_of_ns": int(state.as_of_ns),
        "churn_risk": float(state.churn_risk),  # NaN without a churn model
        "outcomes": {str(k): float(v) for k, v in state.outcomes.items()},
        "phase_reasons": _reasons_out(state.phase_reasons),
        "churn_reasons": _reasons_out(state.churn_reasons),
        "why_now": [[w.signal, w.text] for w in state.why_now],
        "actions": [[k[0], k[1], _reasons_out(v)] for k, v in state.action_reasons.items()],
        "contact_ids": [str(x) for x in c.contact_ids.tolist()],
        "contact_roles": [str(x) for x in c.contact_roles.tolist()],
        "consumed_content": list(state.consumed.content_id),
        "consumed_contact": (
            None if state.consumed.contact_id is None else list(state.consumed.contact_id)
        ),
    }
    arrays = {
        "features": np.frombuffer(_features_bytes(setup, models, state), dtype=np.uint8),
        "phase_proba": np.asarray(state.phase_proba, dtype="<f8"),
        "p": np.asarray(c.p, dtype="<f8"),
        "item": np.asarray(c.item, dtype="<i8"),
        "contact": np.asarray(c.contact, dtype="<i8"),
        "consumed_ts": np.asarray(state.consumed.ts_ns, dtype="<i8"),
    }
    meta["arrays"] = [[name, a.dtype.str, len(a)] for name, a in arrays.items()]
    header = json.dumps(meta).encode()
    body = b"".join(a.tobytes() for a in arrays.values())
    return zlib.compress(_MAGIC + struct.pack("<I", len(header)) + header + body, 1)


def _unpack(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON header and the arrays of a blob :func:`encode_state` wrote."""
    raw = zlib.decompress(blob)
    if raw[: len(_MAGIC)] != _MAGIC:
        raise ValueError("not an account state")
    at = len(_MAGIC) + 4
    (size,) = struct.unpack("<I", raw[len(_MAGIC) : at])
    meta = json.loads(raw[at : at + size])
    at += size
    arrays: dict[str, np.ndarray] = {}
    for name, dtype, n in meta["arrays"]:
        kind = np.dtype(dtype)
        if kind.kind not in "fiu":  # numbers only: nothing else is ever written
            raise ValueError(f"array {name!r} of dtype {dtype!r}")
        arrays[name] = np.frombuffer(raw, dtype=kind, count=n, offset=at)
        at += kind.itemsize * n
    return meta, arrays


def decode_state(setup: ScoringSetup, blob: bytes) -> AccountState:
    """Returns the state :func:`encode_state` wrote. Raises :class:`ScoringError` for bytes
    of another format (the caller recomputes)."""
    try:
        meta, arrays = _unpack(blob)
    except (ValueError, KeyError, TypeError, struct.error, zlib.error) as exc:
        raise ScoringError(f"a stored account state is unreadable: {exc}") from exc
    if meta.get("format") != STATE_FORMAT:
        raise ScoringError(f"a stored account state has format {meta.get('format')!r}")
    ids = np.array(meta["contact_ids"], dtype=object)
    roles = np.array(meta["contact_roles"], dtype=object)
    position = {c: i for i, c in enumerate(meta["contact_ids"])}
    catalog = setup.catalog
    candidates = PreparedCandidates(
        p=arrays["p"],
        item=arrays["item"],
        contact=arrays["contact"],
        contact_ids=ids,
        contact_roles=roles,
        contact_position=position,
        role_code=np.array([catalog.role_index.get(r, -1) for r in roles], dtype=np.int64),
        catalog_size=len(catalog.content_ids),
        account_level=position.get(ACCOUNT_LEVEL, -1),
    )
    as_of_ns = int(meta["as_of_ns"])
    return AccountState(
        as_of=pd.Timestamp(as_of_ns, tz="UTC"),
        as_of_ns=as_of_ns,
        features=arrays["features"].tobytes(),
        features_ipc=True,
        phase_proba=arrays["phase_proba"],
        phase_reasons=_reasons_in(meta["phase_reasons"]),
        churn_risk=float(meta["churn_risk"]),
        churn_reasons=_reasons_in(meta["churn_reasons"]),
        candidates=candidates,
        consumed=Recent(
            content_id=meta["consumed_content"],
            ts_ns=arrays["consumed_ts"],
            contact_id=meta["consumed_contact"],
        ),
        action_reasons={(c, i): _reasons_in(r) for c, i, r in meta["actions"]},
        outcomes={str(k): float(v) for k, v in meta.get("outcomes", {}).items()},
        # States stored before timing signals existed have none (until recomputed).
        why_now=tuple(WhyNow(str(s), str(t)) for s, t in meta.get("why_now", [])),
    )
