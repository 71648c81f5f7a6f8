"""Names for the simulated world: companies and people that read like a B2B CRM's.

A company's name is a coined brand or a family name, a word of its industry and a legal
form of its region ("Hoffmann Logistik GmbH", "Brightline Analytics Ltd"); a person's is a
first and a last name common in the account's region. Drawn from word lists with their
own generator (seeded by the run's seed and :data:`NAMES_STREAM`), after the run: the
tables, the truth and every other draw are the same with or without names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import JourneyData
from features.simulate.columns import STR

# The names' random stream beside the run's (numpy SeedSequence entropy [seed, stream]).
NAMES_STREAM = 0x4E414D45

# Per region: first names, last names and legal forms. A region the taxonomy adds later
# draws from every list.
_FIRST: dict[str, tuple[str, ...]] = {
    "dach": (
        "Anna",
        "Lukas",
        "Julia",
        "Felix",
        "Lena",
        "Jonas",
        "Sophie",
        "Maximilian",
        "Laura",
        "Tobias",
        "Katharina",
        "Stefan",
        "Miriam",
        "Florian",
        "Sabine",
        "Jan",
    ),
    "nordics": (
        "Emma",
        "Erik",
        "Ingrid",
        "Lars",
        "Freja",
        "Mikkel",
        "Sofia",
        "Anders",
        "Astrid",
        "Johan",
        "Maja",
        "Henrik",
        "Elin",
        "Oskar",
        "Sigrid",
        "Nils",
    ),
    "uk_ireland": (
        "Oliver",
        "Amelia",
        "Jack",
        "Isla",
        "Harry",
        "Grace",
        "George",
        "Emily",
        "Liam",
        "Siobhan",
        "Thomas",
        "Charlotte",
        "Conor",
        "Hannah",
        "James",
        "Niamh",
    ),
    "france_benelux": (
        "Camille",
        "Louis",
        "Chloé",
        "Hugo",
        "Léa",
        "Arthur",
        "Manon",
        "Lucas",
        "Eva",
        "Thijs",
        "Sanne",
        "Daan",
        "Inès",
        "Bram",
        "Julie",
        "Maxime",
    ),
    "southern_europe": (
        "Giulia",
        "Marco",
        "Lucía",
        "Alejandro",
        "Francesca",
        "Luca",
        "Carmen",
        "Pablo",
        "Chiara",
        "Javier",
        "Beatriz",
        "João",
        "Sara",
        "Andrea",
        "Inês",
        "Matteo",
    ),
    "north_america": (
        "Jane",
        "Michael",
        "Emily",
        "David",
        "Sarah",
        "Christopher",
        "Jessica",
        "Daniel",
        "Ashley",
        "Matthew",
        "Olivia",
        "Ryan",
        "Megan",
        "Kevin",
        "Rachel",
        "Brandon",
    ),
}
_LAST: dict[str, tuple[str, ...]] = {
    "dach": (
        "Müller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Hoffmann",
        "Koch",
        "Richter",
        "Wolf",
        "Huber",
        "Gruber",
        "Keller",
        "Brunner",
    ),
    "nordics": (
        "Johansson",
        "Andersson",
        "Nielsen",
        "Hansen",
        "Larsen",
        "Lindqvist",
        "Virtanen",
        "Berg",
        "Karlsson",
        "Nyström",
        "Jensen",
        "Halvorsen",
        "Korhonen",
        "Dahl",
        "Eriksson",
        "Holm",
    ),
    "uk_ireland": (
        "Smith",
        "Jones",
        "Taylor",
        "Brown",
        "Williams",
        "Wilson",
        "Murphy",
        "Kelly",
        "Walsh",
        "Davies",
        "Evans",
        "Thompson",
        "O'Brien",
        "Byrne",
        "Clarke",
        "Hughes",
    ),
    "france_benelux": (
        "Martin",
        "Bernard",
        "Dubois",
        "Moreau",
        "Laurent",
        "Lefèvre",
        "Girard",
        "de Jong",
        "Jansen",
        "Peeters",
        "Janssens",
        "Visser",
        "Bakker",
        "Maes",
        "Fontaine",
        "Mercier",
    ),
    "southern_europe": (
        "Rossi",
        "Russo",
        "Ferrari",
        "Bianchi",
        "García",
        "Fernández",
        "López",
        "Martínez",
        "Silva",
        "Santos",
        "Romano",
        "Costa",
        "Moreno",
        "Ricci",
        "Navarro",
        "Pereira",
    ),
    "north_america": (
        "Johnson",
        "Miller",
        "Davis",
        "Garcia",
        "Rodriguez",
        "Anderson",
        "Thomas",
        "Jackson",
        "White",
        "Harris",
        "Clark",
        "Lewis",
        "Walker",
        "Young",
        "Allen",
        "Wright",
    ),
}
_LEGAL: dict[str, tuple[str, ...]] = {
    "dach": ("GmbH", "GmbH", "AG", "GmbH & Co. KG"),
    "nordics": ("AB", "AS", "Oy", "A/S"),
    "uk_ireland": ("Ltd", "Ltd", "plc", "Ltd"),
    "france_benelux": ("SA", "SAS", "B.V.", "NV"),
    "southern_europe": ("S.p.A.", "S.r.l.", "S.L.", "S.A."),
    "north_america": ("Inc.", "LLC", "Corp.", "Inc."),
}
# Coined brands: a head and a tail ("Bright" + "line").
_HEADS = (
    "Bright",
    "North",
    "Blue",
    "Silver",
    "Iron",
    "Clear",
    "Summit",
    "Vertex",
    "Nova",
    "Alpen",
    "Stone",
    "River",
    "Oak",
    "Peak",
    "Terra",
    "Helix",
    "Aero",
    "Quant",
    "Lumen",
    "Polar",
    "Crest",
    "Delta",
    "Evergreen",
    "Harbor",
)
_TAILS = (
    "line",
    "field",
    "works",
    "point",
    "bridge",
    "gate",
    "stream",
    "path",
    "core",
    "wave",
    "forge",
    "mark",
    "ridge",
    "tech",
    "sys",
    "port",
)
# Words of each industry a company name ends with (a taxonomy industry not here: none).
_INDUSTRY_WORDS: dict[str, tuple[str, ...]] = {
    "manufacturing": ("Manufacturing", "Industries", "Components", "Maschinenbau", "Precision"),
    "software": ("Software", "Analytics", "Digital", "Labs", "Cloud"),
    "financial_services": ("Capital", "Financial", "Bank", "Insurance", "Asset Management"),
    "healthcare": ("Health", "Medical", "Clinics", "Pharma", "Care"),
    "retail": ("Retail", "Stores", "Commerce", "Markets", "Trading"),
    "logistics": ("Logistics", "Freight", "Transport", "Shipping", "Logistik"),
    "energy": ("Energy", "Power", "Renewables", "Utilities", "Solar"),
    "professional_services": ("Consulting", "Partners", "Advisory", "Group", "Associates"),
}
# Share of companies named after a family ("Hoffmann Logistik GmbH"); the rest are brands.
_FAMILY_SHARE = 0.35


def add_names(data: JourneyData, seed: int) -> None:
    """Fills ``data.accounts["name"]`` and ``data.contacts["name"]`` (in place) with names
    drawn by region (an account's, and a contact's account's); deterministic given ``seed``.
    Assumes the simulator's tables (every contact's account is in accounts)."""
    rng = np.random.default_rng([seed, NAMES_STREAM])
    accounts = data.accounts
    regions = accounts["region"].astype(object).to_numpy()
    industries = accounts["industry"].astype(object).to_numpy()
    accounts["name"] = pd.Series(
        _company_names(regions, industries, rng), index=accounts.index, dtype=STR
    )
    contacts = data.contacts
    region_of = pd.Series(regions, index=accounts["account_id"].to_numpy())
    contact_regions = region_of.reindex(contacts["account_id"].to_numpy()).to_numpy()
    contacts["name"] = pd.Series(
        _person_names(contact_regions, rng), index=contacts.index, dtype=STR
    )


def _pick(words: tuple[str, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(words, dtype=object)[rng.integers(0, len(words), n)]


def _by_region(
    regions: np.ndarray, table: dict[str, tuple[str, ...]], rng: np.random.Generator
) -> np.ndarray:
    """One word of ``table`` per row, from its region's list (every list for another)."""
    out = np.empty(len(regions), dtype=object)
    everything = tuple(w for words in table.values() for w in words)
    for region in pd.unique(regions):
        rows = regions == region
        out[rows] = _pick(table.get(str(region), everything), int(rows.sum()), rng)
    return out


def _company_names(
    regions: np.ndarray, industries: np.ndarray, rng: np.random.Generator
) -> list[str]:
    n = len(regions)
    brand = _pick(_HEADS, n, rng) + _pick(_TAILS, n, rng)
    family = _by_region(regions, _LAST, rng)
    stem = np.where(rng.random(n) < _FAMILY_SHARE, family, brand)
    industry = np.empty(n, dtype=object)
    for name in pd.unique(industries):
        rows = industries == name
        words = _INDUSTRY_WORDS.get(str(name), ("",))
        industry[rows] = _pick(words, int(rows.sum()), rng)
    legal = _by_region(regions, _LEGAL, rng)
    return [
        " ".join(part for part in parts if part)
        for parts in zip(stem, industry, legal, strict=True)
    ]


def _person_names(regions: np.ndarray, rng: np.random.Generator) -> list[str]:
    first = _by_region(regions, _FIRST, rng)
    last = _by_region(regions, _LAST, rng)
    return [f"{f} {la}" for f, la in zip(first, last, strict=True)]
