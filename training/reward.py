"""What a next action is rewarded for (light: the CLI and ``training.train`` import it
before any model library)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from features.errors import InvalidInputError
from features.schema import RESPONSE_EVENT_TYPES, RESPONSE_WINDOW_DAYS
from features.taxonomy import Taxonomy

RewardKind = Literal["response", "value"]
REWARD_KINDS: tuple[RewardKind, ...] = ("response", "value")


class RewardError(InvalidInputError):
    """A reward definition the data cannot give; the message names the value."""


@dataclass(frozen=True)
class Reward:
    """What a decision is rewarded for: ``response`` (1 when the account has a touchpoint of
    ``event_types`` within ``window_days`` after it) or ``value`` (the sum of those
    touchpoints' ``value``). Empty ``event_types``: the response types for a response,
    ``purchase`` for a value."""

    kind: RewardKind = "response"
    event_types: tuple[str, ...] = ()
    window_days: int = RESPONSE_WINDOW_DAYS

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise RewardError(f"reward {self.kind!r}: expected one of {', '.join(REWARD_KINDS)}")
        if self.window_days < 1:
            raise RewardError(f"reward window_days={self.window_days}: expected at least 1 day")

    def types(self, taxonomy: Taxonomy) -> tuple[str, ...]:
        """The event types counted; raises for one the taxonomy does not know."""
        known = set(taxonomy.event_type_names)
        unknown = [t for t in self.event_types if t not in known]
        if unknown:
            raise RewardError(
                f"reward event types {unknown} are not event types of the taxonomy; expected "
                f"some of {sorted(known)}"
            )
        chosen = self.event_types or (
            RESPONSE_EVENT_TYPES if self.kind == "response" else ("purchase",)
        )
        return tuple(t for t in chosen if t in known)

    def to_params(self, taxonomy: Taxonomy) -> dict[str, str]:
        """The reward as run params."""
        return {
            "reward": self.kind,
            "reward_event_types": ",".join(self.types(taxonomy)),
            "reward_window_days": str(self.window_days),
        }
