"""Schemathesis against nivl's own /openapi.json over a real server on loopback.

Every operation gets generated cases, valid and invalid; no answer may be a 5xx, every
4xx must be JSON with a `reason`, and answers must conform to the documented schema.
More cases: NIVL_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_api.py
(schemathesis' pytest plugin does not run under pytest 9 yet, so this drives its API.)
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

# Excluded: nivl validates more than OpenAPI can say (at least one search parameter,
# year_start <= year_end, the result window), so some schema-valid requests are rightly
# 400s; four_xx_has_a_reason checks that each of those says why.

EXAMPLES = int(os.environ.get("NIVL_FUZZ_EXAMPLES", "150"))


def four_xx_has_a_reason(ctx, response, case) -> None:  # type: ignore[no-untyped-def]
    if 400 <= response.status_code < 500 and response.status_code != 405:
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("reason"), str):
            raise AssertionError(f"{response.status_code} without a JSON reason: {body!r}")


def test_no_server_errors_and_every_4xx_has_a_reason(api_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    calls: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:  # type: ignore[no-untyped-def]
                response = case.call(base_url=api_url)
                assert response.status_code < 500, (case.as_curl_command(), response.text)
                case.validate_response(
                    response,
                    additional_checks=[four_xx_has_a_reason],
                    excluded_checks=[positive_data_acceptance],
                )
                calls[case.operation.label] = calls.get(case.operation.label, 0) + 1

            try:
                run()
            except Unsatisfiable:
                # no invalid input exists for an operation without parameters (/healthz)
                assert mode is GenerationMode.NEGATIVE
    print(f"schemathesis cases per operation: {calls}; total {sum(calls.values())}")
    assert sum(calls.values()) >= 1000
