"""The API's shared types: ids as the store accepts them, the answer base class, JSON values."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from serving.store.values import ID_RULE, MAX_ID_LENGTH, check_id, check_text

# The id rule for people (OpenAPI descriptions).
ID_DOC = ID_RULE[0].upper() + ID_RULE[1:] + "."
# Every id the API takes, checked once where the request is parsed (422 naming the field),
# so no route hands the database an id it cannot store or compare (NUL, lone surrogates)
# and the answers never echo one back.
Id = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(check_id)
]
# Free text stored as given: anything but NUL and lone surrogates.
Text = Annotated[str, AfterValidator(check_text)]
AccountIdPath = Annotated[Id, Path(description=f"The account's id. {ID_DOC}")]
RepIdPath = Annotated[Id, Path(description=f"The rep's id (an account's owner_rep_id). {ID_DOC}")]
ContactIdQuery = Annotated[Id | None, Query(description=f"Only actions for this contact. {ID_DOC}")]

Outcome = Literal["shown", "accepted", "dismissed", "converted"]
ChurnBandName = Literal["low", "medium", "high"]


class Out(BaseModel):
    """An answer body: immutable once built."""

    model_config = ConfigDict(frozen=True)


def json_value(value: Any) -> float | str | bool | None:
    """A reason's feature value as JSON: numbers as floats (NaN as null), text as text."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return None if math.isnan(number) else number
    try:
        if value != value:  # pd.NA / NaT compare unequal to themselves or raise
            return None
    except TypeError:
        return None
    return str(value)
