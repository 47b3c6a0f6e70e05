"""schemathesis against /openapi.json: requests generated from the schema of every route,
sent with an admin token; no answer may be a 5xx. Bounded here (`make test`); the long run
is `make fuzz-http` (TICKETHUB_HTTP_FUZZ_EXAMPLES)."""

from __future__ import annotations

import os
from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import seed

import tickethub_cli as th
from tickethub_cli import tokens
from tickethub_cli.http.app import create_app

EXAMPLES = int(os.environ.get("TICKETHUB_HTTP_FUZZ_EXAMPLES", "150"))
# PostgreSQL runs the same routes through the same services: a smaller sample of it keeps
# `make test` short (the long run, `make fuzz-http`, takes TICKETHUB_HTTP_FUZZ_EXAMPLES)
LONG_RUN = "TICKETHUB_HTTP_FUZZ_EXAMPLES" in os.environ
BUDGET = {"sqlite": EXAMPLES, "postgresql": EXAMPLES if LONG_RUN else 50}


def test_generated_requests_never_get_a_5xx(make_db, backend, monkeypatch):
    monkeypatch.setenv("TICKETHUB_WEBHOOK_SECRET", "whsec_fuzz")
    db = make_db("fuzz")
    seed(db)
    s = th.open_session(db, operator="fuzz")
    secret = tokens.create_token(s, role="admin")[1]
    s.close()
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(db, access_log=None))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=BUDGET[backend],
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=st.one_of([op.as_strategy() for op in operations]))
    def call(case):
        response = case.call(headers={"Authorization": f"Bearer {secret}"})
        statuses[response.status_code] += 1
        assert response.status_code < 500, (
            case.method,
            case.formatted_path,
            response.status_code,
            response.text[:500],
        )

    call()
    assert statuses  # something was sent
