"""Schemathesis against the live server's own `/openapi.json`, with every check it has (server
errors, status codes, content types, response schemas and headers, positive and negative data,
auth that is ignored, unsupported methods, and the rest), the API key sent as a header.

Schemathesis's pytest loader (`from_fixture`) reads a private pytest attribute that pytest 9
no longer has, so each operation's strategy is run here with Hypothesis directly."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from tests.service.fuzz.conftest import API_KEY, AUDIO, WINDOWS, FuzzServer
from tests.service.fuzz.properties import ANSWER_TIMEOUT_S

load_all_checks()
ALL_CHECKS = [check for check in CHECKS.get_all() if not is_check_class(check)]
# A schema-valid body is not always usable: OpenAPI cannot say "decodable audio", "at least
# one window of rows" or "a model of this kind". Those two routes document 422 and 400 for
# exactly that, so they are accepted answers to positive data there, beside schemathesis's own
# defaults; every other status and every other check stays as shipped.
POSITIVE_DEFAULTS = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            {
                "include-path": [
                    "/v1/models/{name}/score",
                    "/v1/models/{name}/windows",
                    "/v2/models/{name}/infer",
                    "/v2/models/{name}/versions/{version}/infer",
                    # A cursor is any string to the schema; one this service did not give is 422.
                    "/v1/events",
                ],
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": [*POSITIVE_DEFAULTS, "400", "422"]
                    }
                },
            }
        ]
    }
)
EXAMPLES_PER_OPERATION = 20
# One credential, in one of the schema's security schemes: `ignored_auth` replaces or drops it
# and expects a 401, which a second, valid X-API-Key header would wrongly turn into a 200.
BEARER = {"Authorization": f"Bearer {API_KEY}"}
Operation = schemathesis.APIOperation[Any, Any, Any, Any]


def _failures(
    operation: Operation,
    mode: schemathesis.GenerationMode,
    server: FuzzServer,
    model: str | None,
) -> str | None:
    """None when every generated case passes every check; else what failed. `model` fills
    the path's {name}, so bodies reach a real model instead of a 404."""
    names = {"name": model} if model is not None else None

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=names))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers=BEARER, checks=ALL_CHECKS, timeout=ANSWER_TIMEOUT_S)

    try:
        run()
    except Unsatisfiable:  # nothing in the operation can be made invalid: no negative cases
        return None
    except (Exception, FailureGroup) as exc:  # failed checks, and timeouts (hangs)
        return f"{operation.label} ({mode.value}, name={model}): {type(exc).__name__}: {exc}"
    return None


def test_the_api_honours_its_own_schema(fuzz_server: FuzzServer) -> None:
    schema = schemathesis.openapi.from_url(
        f"{fuzz_server.url}/openapi.json", config=CONFIG, timeout=10
    )
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the schema has an invalid operation: {result.err()}"
        operations.append(result.ok())
    assert operations, "the schema has no operations"
    failures = [
        failure
        for operation in operations
        for model in ([None, AUDIO, WINDOWS] if "{name}" in operation.path else [None])
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
        if (failure := _failures(operation, mode, fuzz_server, model)) is not None
    ]
    assert not failures, "\n\n".join(failures)
