"""Schemathesis: every operation of the OpenAPI schema served at /api/schema, fuzzed
against the live gateway as an authenticated user. Checks: no 5xx, status codes,
content types, headers and bodies conform to the schema, schema-valid input is
accepted and invalid input rejected, and authenticated operations refuse a request
without credentials.

The schema is taken from the /api/schema view at import time (test collection needs
it before the live stack runs, and schemathesis' lazy fixture loader does not work
with this pytest); test_served_schema_is_the_one_fuzzed proves the live gateway
serves the same document."""

import uuid
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.specs.openapi import checks

from tests.client import User, register
from tests.stack import gateway_url

pytestmark = pytest.mark.usefixtures("stack")

MAX_EXAMPLES = 30  # per operation and phase: ~20 operations finish in well under a minute


def _schema_document() -> dict[str, Any]:
    from django.test import Client

    r = Client().get("/api/schema", {"format": "json"})
    assert r.status_code == 200, r.content[:300]
    return r.json()


DOCUMENT = _schema_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.update(base_url=gateway_url(), request_timeout=10)
# The credentials are a real user's token, sent with every request (below); generated
# Authorization values would only be random strings. ignored_auth still probes every
# authenticated operation without credentials and with invalid ones.
schema.config.generation.update(max_examples=MAX_EXAMPLES, database="none", with_security_parameters=False)
# 413 is how the protocol rejects a too-long message body or `extra` (as the WebSocket's
# `too_large`): a rejection of invalid input like 400, so it counts as one.
schema.config.checks.negative_data_rejection.expected_statuses = [
    *schema.config.checks.negative_data_rejection.expected_statuses, "413"]


@pytest.fixture(scope="module")
def fuzz_user(stack) -> User:
    return register("fuzz")


# `positive_data_acceptance` demands a 2xx for every request the schema allows. These
# operations check what no OpenAPI schema can express, and their 400/401 for such
# schema-valid input is the protocol's answer, not a bug: a password that is not
# common nor all digits, a username not yet taken, credentials that match an account,
# a token that verifies (auth); user ids that exist and are active (groups: "unknown or
# inactive ids -> 400"); a 1:1 id naming the smaller user first, a non-blank text body,
# `extra` within 4 KiB (messages, validated as a WebSocket `send`); a file that is not
# empty, and that decodes if its bytes say it is an image (uploads); the caller's own
# password as `old_password` (password change); no NUL character in a nickname or a
# group's new name (DRF refuses it in every string field); a search query that is not
# blank once trimmed and holds no NUL; an edit's body that is not blank (a text body).
SEMANTIC_VALIDATION = {"POST /api/auth/register", "POST /api/auth/login", "POST /api/auth/refresh",
                       "POST /api/auth/logout", "POST /api/auth/password", "PATCH /api/users/me",
                       "POST /api/groups", "PATCH /api/groups/{group_id}", "POST /api/groups/{group_id}/members",
                       "POST /api/messages", "POST /api/uploads", "GET /api/search",
                       "POST /api/messages/{message_id}/edit"}


@schema.parametrize()
def test_api_conforms_to_its_schema(case: Any, fuzz_user: User) -> None:
    excluded = []
    if f"{case.method.upper()} {case.path}" in SEMANTIC_VALIDATION:
        excluded.append(checks.positive_data_acceptance)
    case.call_and_validate(headers=fuzz_user.headers, excluded_checks=excluded)


def test_served_schema_is_the_one_fuzzed(stack) -> None:
    served = requests.get(f"{gateway_url()}/api/schema", params={"format": "json"}, timeout=10)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def test_every_rest_operation_is_in_the_schema() -> None:
    """Every operation fuzzed above: nothing the gateway serves under /api/ is missing."""
    operations = {f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items() for method in item}
    assert len(operations) >= 19, sorted(operations)
    assert "POST /api/messages" in operations and "PATCH /api/groups/{group_id}/members/{user_id}" in operations
    assert {"PATCH /api/users/me", "POST /api/auth/password", "PATCH /api/groups/{group_id}"} <= operations
    assert "POST /api/messages/{message_id}/edit" in operations


def test_no_server_error_for_a_body_that_is_not_json(fuzz_user: User) -> None:
    """Bodies schemathesis does not send: not JSON, not UTF-8, the wrong media type."""
    base = gateway_url()
    for path in ("/api/groups", "/api/messages", "/api/auth/login", "/api/conversations/s_1_2/read"):
        for data, ctype in ((b"{not json", "application/json"), (b"\xff\xfe\x00", "application/json"),
                            (b"a=1", "application/x-www-form-urlencoded"), (b"<x/>", "application/xml"),
                            (b"", "application/json"), (b"[1, 2]", "application/json"),
                            (b'"' + uuid.uuid4().hex.encode() + b'"', "application/json")):
            r = requests.post(base + path, data=data, headers={**fuzz_user.headers, "Content-Type": ctype},
                              timeout=10)
            assert 400 <= r.status_code < 500, (path, data, ctype, r.status_code, r.text[:200])
            assert r.headers["Content-Type"].startswith("application/json"), (path, data, r.headers)
