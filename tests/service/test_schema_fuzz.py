"""Schemathesis against the OpenAPI schema (issue 18): generated requests, valid and not, to
every documented operation as an admin; none may answer 5xx or a status the schema does not
document. Bounded (a few examples per operation) so that it runs in CI on every change.

Driven through Hypothesis directly: schemathesis's pytest plugin fails under pytest 9."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

pytestmark = pytest.mark.service

EXAMPLES = 8  # per operation


def test_no_operation_answers_a_server_error_or_an_undocumented_status(api):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    headers = {"X-API-Key": api.keys["admin"]}
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def call(case):
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, status_code_conformance]
            )

        try:
            call()
        except Exception as error:  # collect every operation's failure, not only the first
            failures.append(f"{operation.label}: {error}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
