"""The next-content model's names: its target, the candidate columns with their
definitions, and which account columns it reads and uses."""

from __future__ import annotations

from features.schema import RESPONSE_WINDOW_DAYS
from features.taxonomy import Taxonomy

LABEL_COLUMN = "responded"
TARGET = (
    f"1 if the contact responds to the shown content within {RESPONSE_WINDOW_DAYS} days "
    "(a touchpoint of the same account, contact and content of a response event type)"
)
KEY_COLUMNS = ("account_id", "as_of")
TOPIC_WINDOWS = ("365d", "ever")
# The windows of the account's content touchpoints per phase the phase fit features read.
PHASE_WINDOWS = ("30d", "90d", "365d")

# The columns candidate_features adds to the account's features, with their definitions
# (reason codes quote them).
CANDIDATE_DEFINITIONS: dict[str, str] = {
    "contact_role": "buying-center role of the contact the content goes to",
    "content_type": "content type of the item",
    "content_topic": "topic of the item",
    "content_channel": "the channel the item usually goes out through",
    "content_value": "business value of the item",
    "fits_phase": "1 if the item fits the account's CRM phase "
    "(0: the item does not fit the account's CRM phase)",
    "fits_next_phase": "1 if the item fits the phase after the account's CRM phase "
    "(0: the item does not fit the phase after the account's CRM phase)",
    "fits_previous_phase": "1 if the item fits the phase before the account's CRM phase "
    "(0: the item does not fit the phase before the account's CRM phase)",
    "n_content_phases": "phases the item fits",
    "fits_role": "1 if the item fits the contact's role (0: the item does not fit the "
    "contact's role)",
    "n_content_roles": "roles the item fits",
    "type_touchpoints_90d": "the account's touchpoints with this content type, last 90 days",
    "type_touchpoints_365d": "the account's touchpoints with this content type, last 365 days",
    "days_since_type": "days since the account's last touchpoint with this content type",
    "phase_touchpoints_30d": "the account's touchpoints with content fitting the item's "
    "phases, last 30 days",
    "phase_share_30d": "share of the account's content touchpoints of the last 30 days that "
    "were on content fitting the item's phases",
    "phase_share_90d": "share of the account's content touchpoints of the last 90 days that "
    "were on content fitting the item's phases",
    "phase_share_365d": "share of the account's content touchpoints of the last 365 days that "
    "were on content fitting the item's phases",
    "days_since_phase": "days since the account's last touchpoint with content fitting one of "
    "the item's phases",
    "role_touchpoints_90d": "the account's touchpoints by contacts of this contact's role, "
    "last 90 days",
    "topic_touchpoints_365d": "the account's content touchpoints on the item's topic, last "
    "365 days",
    "topic_share_365d": "share of the account's content touchpoints of the last 365 days that "
    "were on the item's topic",
    "topic_touchpoints_ever": "the account's content touchpoints on the item's topic, ever",
    "topic_share_ever": "share of all the account's content touchpoints that were on the "
    "item's topic",
    "topic_rank_ever": "rank of the item's topic among the account's topics by touchpoints "
    "(0 = most engaged)",
    "topic_interest_ever": "how much more the account engages with the item's topic than with "
    "its average topic (log of 1 + touchpoints on the topic minus the mean of that over "
    "topics, ever)",
    "content_item": "the content item itself (items of the catalog at training; others empty)",
    "position": "slot the item is shown in (1 = first; serving scores every item as if "
    "shown first)",
    "decision_month": "month of the year the item is shown in (1 = January)",
    "decision_weekday": "day of the week the item is shown on (0 = Monday, 6 = Sunday)",
}
# The slot serving scores every candidate at: rankings compare items as if each were shown
# first, so a position effect learned from the log does not favour the items the logging
# policy happened to show higher up.
SERVING_POSITION = 1.0
CANDIDATE_COLUMNS: list[str] = list(CANDIDATE_DEFINITIONS)
# The item's identity. The next-action model (a few arms and a control, often described by
# nothing else) needs it to tell its arms apart; the next-content model leaves it out: the
# logging policy shows an item only in some contexts (the items of the CRM phase), and a
# per-item category lets the trees carry its response there (onboarding content to
# customers) to contexts it was never shown in (accounts without a CRM record), where the
# item's attributes (type, topic, channel, phases, roles, value) generalize. On the
# simulator, leaving it out took the share of the random-to-oracle gain from 0.78 to 0.84
# (20,000 accounts, seed 20261125).
ITEM_COLUMN = "content_item"


def topic_columns(taxonomy: Taxonomy) -> list[str]:
    """Names of the per-topic account columns :func:`topic_engagement` produces."""
    return [f"n_topic_{t}_{w}" for w in TOPIC_WINDOWS for t in taxonomy.topic_names]


def account_feature_columns(taxonomy: Taxonomy) -> list[str]:
    """The account features the model uses (a response depends on the journey phase, the
    buying center's engagement, recent exposures and topic interest; firmographics and
    channel mix add cost, not signal): CRM phase and its age, recent activity, content
    touchpoints per phase, exposure responses, buying-center engagement and the per-topic
    counts of :func:`topic_engagement`."""
    phases = taxonomy.phases
    return [
        "crm_phase",
        "days_in_crm_phase",
        "is_customer",
        "n_purchases",
        "days_since_first_touch",
        "days_since_last_touch",
        *(f"n_touchpoints_{w}d" for w in (7, 30, 90, 365)),
        *(f"n_content_phase_{p}_{w}d" for p in phases for w in (7, 30, 90)),
        *(f"days_since_content_phase_{p}" for p in phases),
        "n_exposures_90d",
        "n_responses_90d",
        "response_rate_90d",
        "n_contacts",
        "n_roles_covered",
        "n_contacts_engaged_90d",
        "n_roles_engaged_90d",
        "trend_engagement_30d",
        "dwell_minutes_90d",
        *(f"n_role_{r}_90d" for r in taxonomy.role_names),
        *topic_columns(taxonomy),
    ]


def candidate_input_columns(taxonomy: Taxonomy) -> list[str]:
    """The account columns :func:`candidate_features` reads to compute the fit features."""
    types = taxonomy.content_type_names
    return [
        "crm_phase",
        # the decision's calendar when no exposure time is given (serving: as of now)
        "as_of_month",
        "as_of_weekday",
        *(f"n_content_type_{t}_{w}" for w in ("90d", "365d") for t in types),
        *(f"days_since_content_type_{t}" for t in types),
        *(f"n_content_phase_{p}_{w}" for w in PHASE_WINDOWS for p in taxonomy.phases),
        *(f"days_since_content_phase_{p}" for p in taxonomy.phases),
        *(f"n_role_{r}_90d" for r in taxonomy.role_names),
        *topic_columns(taxonomy),
    ]


def account_input_columns(taxonomy: Taxonomy) -> list[str]:
    """Every account column the model needs per decision: its account features and the
    inputs of the fit features, without duplicates, in that order."""
    return list(
        dict.fromkeys([*account_feature_columns(taxonomy), *candidate_input_columns(taxonomy)])
    )


def feature_columns(taxonomy: Taxonomy) -> list[str]:
    """The model's features: :func:`account_feature_columns` then ``CANDIDATE_COLUMNS``
    except ``ITEM_COLUMN``."""
    return [*account_feature_columns(taxonomy), *(c for c in CANDIDATE_COLUMNS if c != ITEM_COLUMN)]
