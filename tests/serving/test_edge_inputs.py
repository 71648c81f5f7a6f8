"""Input at the edge of the API, on SQLite and the local PostgreSQL: values one of the two
databases cannot store (NUL, lone surrogates, integers beyond 64 bits, ids too long) are
answered as the caller's fault and never as a 500. A bad record in ``POST /v1/events`` is
rejected on its own (index, field, reason) while the valid ones are stored; a bad id in a
path, query or body answers 422 naming the parameter. Last, schemathesis sends generated
requests (valid and invalid) for every operation of ``/openapi.json`` and no answer may be
a 5xx.

Bodies are sent as ``json.dumps`` text: it escapes a lone surrogate as ``\\ud800``, which
is how a client puts one on the wire (it cannot be encoded as UTF-8)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from features.pipeline import select_accounts
from serving.app import create_app
from serving.settings import Settings
from serving.store import API_KEY_SCOPES
from serving.store.values import MAX_ID_LENGTH, id_problem
from tests.utils.api import Api, event, loaded_accounts
from tests.utils.registry import TrainedRegistry
from tests.utils.store import BACKENDS, open_store

VALID_RECORDS = 100
BAD_AT = 50
# Generated requests per operation and generation mode (valid / invalid input).
EXAMPLES_PER_OPERATION = 12
JSON = {"Content-Type": "application/json"}


@contextmanager
def open_edge_api(backend: str, directory: Path, registry: TrainedRegistry) -> Iterator[Api]:
    """A store on ``backend`` with a few simulated accounts, and the app over it with the
    default request limits (a batch of 101 records fits)."""
    with open_store(backend, directory, registry.taxonomy) as store:
        ids = loaded_accounts(registry, 20)
        store.load_data(select_accounts(registry.data, ids))
        keys = {scope: store.create_api_key(f"edge-{scope}", [scope]) for scope in API_KEY_SCOPES}
        app_settings = Settings(
            database_url=store.url,
            database_schema=store.schema,
            tracking_uri=registry.tracking_uri,
            reload_interval_s=0,
            exploration_rate=0.0,
            random_seed=0,
        )
        app = create_app(app_settings, clock=lambda: registry.now)
        with TestClient(app) as client:
            yield Api(client, store, registry, keys, ids)


@pytest.fixture(scope="module", params=BACKENDS)
def api(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    registry: TrainedRegistry,
) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp(f"edge-{request.param}")
    with open_edge_api(request.param, directory, registry) as opened:
        yield opened


def post_json(api: Api, url: str, body: Any) -> Any:
    """POST ``body`` as JSON text (surrogates escaped) with the admin key; the response."""
    return api.client.post(url, content=json.dumps(body), headers={**api.headers(), **JSON})


def only_error(response: Any) -> dict[str, Any]:
    """The one validation error of a 422 answer."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert len(detail) == 1, detail
    error: dict[str, Any] = detail[0]
    return error


# -- the id rule (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("A00017", None),
        ("Kunde-Müller 🙂 東京", None),  # printable Unicode, spaces included
        ("x" * MAX_ID_LENGTH, None),
        ("x" * (MAX_ID_LENGTH + 1), f"is {MAX_ID_LENGTH + 1} characters long"),
        (" \t", "is empty or only whitespace"),
        ("a\x00b", "contains a control character (U+0000) at position 1"),
        ("a\tb", "contains a control character (U+0009) at position 1"),
        ("ab\x85", "contains a control character (U+0085) at position 2"),
        ("\ud800x", "contains a lone surrogate (U+D800) at position 0"),
    ],
)
def test_the_id_rule(value: str, problem: str | None) -> None:
    assert id_problem(value) == problem


# -- POST /v1/events: one bad record is rejected on its own -------------------------------------

BAD_RECORDS = [
    ("nul-event-id", {"event_id": "E\x00nul"}, "event_id", "control character (U+0000)"),
    ("nul-account-id", {"account_id": "A\x00"}, "account_id", "control character (U+0000)"),
    ("nul-contact-id", {"contact_id": "P\x00"}, "contact_id", "control character (U+0000)"),
    ("nul-content-id", {"content_id": "C\x00"}, "content_id", "control character (U+0000)"),
    (
        "nul-owner-rep",
        {"account": {"owner_rep_id": "R\x00"}},
        "account.owner_rep_id",
        "control character (U+0000)",
    ),
    ("tab-event-id", {"event_id": "E\t1"}, "event_id", "control character (U+0009)"),
    ("surrogate-event-id", {"event_id": "E\ud800"}, "event_id", "lone surrogate (U+D800)"),
    ("surrogate-channel", {"channel": "web\udfff"}, "channel", "unknown channel 'web\\udfff'"),
    ("surrogate-ts", {"ts": "2025-01-01\ud800"}, "ts", "unparseable timestamp"),
    ("long-event-id", {"event_id": "E" * 256}, "event_id", "is 256 characters long"),
    ("huge-value", {"value": 10**400}, "value", "is out of range"),
    (
        "employees-2-63",
        {"account": {"employees": 2**63}},
        "account.employees",
        "integer 9223372036854775808 is out of range",
    ),
    # pandas parses such a year in microseconds; cast to nanoseconds it wrapped to 1984.
    ("year-1400", {"ts": "1400-01-01T00:00:00Z"}, "ts", "unparseable timestamp"),
    ("surrogate-key", {"\ud800": 1}, "'\\ud800'", "unknown field"),
]


@pytest.mark.parametrize(
    ("name", "change", "field", "reason"), BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS]
)
def test_a_bad_record_is_rejected_and_the_valid_ones_are_stored(
    api: Api, name: str, change: dict[str, Any], field: str, reason: str
) -> None:
    account = f"A-edge-{name}"
    batch = [event(f"E-{name}-{i:03d}", account=account) for i in range(VALID_RECORDS)]
    bad = event(f"E-{name}-bad", account=account)
    bad.update(change)
    batch.insert(BAD_AT, bad)
    response = post_json(api, "/v1/events", {"events": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (VALID_RECORDS, 0)
    [rejected] = body["rejected"]
    assert (rejected["index"], rejected["field"]) == (BAD_AT, field)
    assert reason in rejected["reason"], rejected["reason"]
    data = api.store.account_data(account)
    assert data is not None
    stored = sorted(data.touchpoints["event_id"])
    assert stored == sorted(r["event_id"] for i, r in enumerate(batch) if i != BAD_AT)


def test_ids_of_printable_unicode_up_to_the_maximum_are_stored(api: Api) -> None:
    account = "Kunde Müller 🙂 " + "x" * (MAX_ID_LENGTH - 15)
    assert len(account) == MAX_ID_LENGTH
    record = event("E-edge-unicode-東京", account=account, contact_id="P 🙂")
    response = post_json(api, "/v1/events", {"events": [record]})
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    data = api.store.account_data(account)
    assert data is not None
    assert data.touchpoints["event_id"].tolist() == ["E-edge-unicode-東京"]
    # the same id in a path reads it back
    touchpoints = api.client.get(f"/v1/accounts/{account}/touchpoints", headers=api.headers())
    assert touchpoints.status_code == 200, touchpoints.text
    assert touchpoints.json()["known"] is True


# -- ids in paths, queries and bodies -----------------------------------------------------------

PATHS = [
    ("/v1/accounts/{}/recommendations", "account_id"),
    ("/v1/accounts/{}/touchpoints", "account_id"),
    ("/v1/reps/{}/actions", "rep_id"),
    ("/widget/accounts/{}", "account_id"),
    ("/reps/{}", "rep_id"),
]
BAD_PATH_IDS = [
    ("x" * (MAX_ID_LENGTH + 1), "at most 255 characters"),
    ("a%00b", "control character (U+0000)"),
    ("%00", "control character (U+0000)"),
    ("a%09b", "control character (U+0009)"),
    ("%20%20", "empty or only whitespace"),
]


@pytest.mark.parametrize(("template", "field"), PATHS, ids=[p[0] for p in PATHS])
@pytest.mark.parametrize(
    ("bad_id", "message"), BAD_PATH_IDS, ids=["long", "nul", "only-nul", "tab", "blank"]
)
def test_a_bad_id_in_a_path_answers_422_naming_it(
    api: Api, template: str, field: str, bad_id: str, message: str
) -> None:
    error = only_error(api.client.get(template.format(bad_id), headers=api.headers()))
    assert error["loc"] == ["path", field]
    assert message in error["msg"], error["msg"]


@pytest.mark.parametrize(("template", "field"), PATHS, ids=[p[0] for p in PATHS])
def test_an_id_of_the_maximum_length_is_no_error_in_a_path(
    api: Api, template: str, field: str
) -> None:
    response = api.client.get(template.format("y" * MAX_ID_LENGTH), headers=api.headers())
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("field", ["contact_id", "role", "channel"])
@pytest.mark.parametrize("bad", ["a\x00b", "z" * (MAX_ID_LENGTH + 1)], ids=["nul", "long"])
def test_a_bad_query_filter_answers_422_naming_it(api: Api, field: str, bad: str) -> None:
    response = api.client.get(
        f"/v1/accounts/{api.account_ids[0]}/recommendations",
        params={field: bad},
        headers=api.headers(),
    )
    assert only_error(response)["loc"] == ["query", field]


BAD_BODY_VALUES = [("surrogate", "a\ud800b"), ("nul", "a\x00b"), ("long", "v" * 256)]


@pytest.mark.parametrize("field", ["account_id", "contact_id", "role", "channel"])
@pytest.mark.parametrize(
    "bad", [b[1] for b in BAD_BODY_VALUES], ids=[b[0] for b in BAD_BODY_VALUES]
)
def test_a_bad_id_in_a_recommendations_body_answers_422_naming_it(
    api: Api, field: str, bad: str
) -> None:
    body = {"account_id": api.account_ids[0], field: bad}
    error = only_error(post_json(api, "/v1/recommendations", body))
    assert error["loc"] == ["body", field]


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("recommendation_id", "r\ud800"),
        ("recommendation_id", "r\x00"),
        ("recommendation_id", "r" * 256),
        ("note", "note \udc00"),
        ("note", "note \x00"),
    ],
    ids=["id-surrogate", "id-nul", "id-long", "note-surrogate", "note-nul"],
)
def test_a_bad_feedback_body_answers_422_naming_the_field(api: Api, field: str, bad: str) -> None:
    body = {"recommendation_id": "r-1", "outcome": "shown", field: bad}
    error = only_error(post_json(api, "/v1/feedback", body))
    assert error["loc"] == ["body", field]


def test_feedback_for_a_well_formed_unknown_id_is_404(api: Api) -> None:
    body = {"recommendation_id": "r" * MAX_ID_LENGTH, "outcome": "shown", "note": "line\nbreak"}
    response = post_json(api, "/v1/feedback", body)
    assert response.status_code == 404, response.text


# -- generated requests over the whole OpenAPI document ------------------------------------------


def test_generated_requests_never_get_a_server_error(api: Api) -> None:
    """Schemathesis generates valid and invalid requests for every operation in
    ``/openapi.json``; the app answers them in process, with the admin key, and no answer
    may be a 5xx (deterministic: hypothesis is derandomized)."""
    import schemathesis
    from schemathesis import GenerationMode

    document = api.client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _send_generated(api, operation.as_strategy(generation_mode=mode), failures)
            except Unsatisfiable:
                # An operation without parameters or body (GET /health) has no invalid form.
                assert mode == GenerationMode.NEGATIVE, operation.label
    assert not failures, "\n".join(failures[:10])


def _send_generated(api: Api, cases: st.SearchStrategy[Any], failures: list[str]) -> None:
    """Send ``EXAMPLES_PER_OPERATION`` cases drawn from ``cases``; a 5xx adds a line to
    ``failures`` (collected rather than raised so hypothesis does not shrink for minutes)."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def send(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        headers = {
            k: v
            for k, v in (kwargs.get("headers") or {}).items()
            if k.lower() not in ("authorization", "x-api-key")
        }
        content = kwargs.get("data")
        if "json" in kwargs:
            content = json.dumps(kwargs["json"])
        try:
            response = api.client.request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params"),
                content=content,
                headers={**headers, **api.headers()},
            )
        except Exception as exc:  # the app raised: a 500 in production
            failures.append(f"{kwargs['method']} {kwargs['url']} body={content!r:.300} -> {exc!r}")
            return
        if response.status_code >= 500:
            failures.append(
                f"{kwargs['method']} {kwargs['url']} params={kwargs.get('params')!r} "
                f"body={content!r:.300} -> {response.status_code} {response.text[:300]}"
            )

    send()


@pytest.mark.parametrize("url", ["/v1/events", "/v1/feedback", "/v1/accounts/A-1/recommendations"])
def test_a_deeply_nested_body_is_the_callers_fault(api: Api, url: str) -> None:
    """JSON nested deeper than the parser's recursion limit (within the size limit) is a
    4xx, not a RecursionError answered as a 500."""
    depth = 100_000
    body = "[" * depth + "]" * depth
    response = api.client.post(url, content=body, headers={**api.headers(), **JSON})
    assert 400 <= response.status_code < 500, response.text
    nested_object = '{"a":' * depth + "1" + "}" * depth
    response = api.client.post(url, content=nested_object, headers={**api.headers(), **JSON})
    assert 400 <= response.status_code < 500, response.text
