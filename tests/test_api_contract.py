"""The API against its own OpenAPI schema (schemathesis): generated requests to every endpoint
get answers the schema describes, and never a server error. Starting runs is left out: the
generated options would start runs of up to ten million records."""

import os

import schemathesis
from django.conf import settings as django_settings
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from data_insertion.runs.models import Run, RunSource
from tests.conftest import all_databases

# Hypothesis keeps caches in .hypothesis/ of the working directory: never the repository's.
set_hypothesis_home_dir(django_settings.DATA_DIR / "hypothesis")

TOKEN = "contract-test-token"
# What the API promises: no server error, and only the statuses, media types and bodies its
# schema documents.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application()).exclude(
    method="POST", path="/api/runs"
)
# Valid requests only: the negative checks would also want unknown query parameters refused,
# which this API, like most, ignores. Malformed values are covered in test_api.py.
schema.config.generation.update(modes=[GenerationMode.POSITIVE])


@all_databases
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_schema_says(case):
    os.environ["DS_API_TOKEN"] = TOKEN
    try:
        # One finished run with no summary and one queued: the event stream of a queued run
        # would never end, so it is stopped before any request.
        Run.objects.get_or_create(
            pk=1,
            defaults={
                "source": RunSource.API,
                "config": {"threads": 1, "records": 1},
                "status": "failed",
            },
        )
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        del os.environ["DS_API_TOKEN"]
