"""The REST API under /api/ (django-ninja): runs (start, list, status, stop, events, report,
summary), the stored records, and the health of the databases and the cache. Every endpoint
needs `Authorization: Bearer TOKEN`; the OpenAPI schema at /api/openapi.json does not, nor its
docs page at /api/docs, which only draws the schema (ninja's docs_decorator would close the
schema too).

django-ninja rather than Django REST Framework: the request and response shapes are Pydantic
classes (schemas.py) that also validate the options (a bad one is a 422 naming the field), the
OpenAPI schema comes from them with no extra package, and its docs page is served from its
own static files, offline; DRF would need drf-spectacular and its sidecar for the same.
"""

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from ninja import NinjaAPI, Router, Schema, Status
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.security import HttpBearer
from pydantic import Field

from ..health import check_health
from ..models import Order, Product, User
from ..persistence import stored_rows
from ..report import render_pdf
from ..runs.models import Run, RunSource
from ..runs.recording import request_stop, start_run, summary_of
from ..runs.tokens import is_valid_token
from .events import event_stream_response
from .schemas import (
    ErrorOut,
    HealthOut,
    OrderOut,
    ProductOut,
    RunDetailOut,
    RunOptions,
    RunOut,
    StartedRunOut,
    UserOut,
    ValidationErrorOut,
)

logger = logging.getLogger(__name__)
MAX_PAGE_SIZE = 1000
MAX_OFFSET = 2**62


class BoundedPage(LimitOffsetPagination):
    """limit and offset within what a database takes: a limit of 10**30 was an overflow (a
    500) on SQLite, whose integers have 64 bits."""

    class Input(Schema):
        limit: int = Field(100, ge=1, le=MAX_PAGE_SIZE, description="items per page")
        offset: int = Field(0, ge=0, le=MAX_OFFSET, description="items to skip")


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> str | None:
        return token if is_valid_token(token) else None


api = NinjaAPI(
    title="distributed_system",
    version="1",
    description="Start, watch and compare runs of the simulation; read the stored records.",
    auth=BearerToken(),
    urls_namespace="api",
)
# What any endpoint may answer besides its own: no valid token, or a malformed parameter.
ERRORS = {401: ErrorOut, 422: ValidationErrorOut}
runs = Router(tags=["runs"])
records = Router(tags=["records"])
health_router = Router(tags=["health"])


@api.exception_handler(Exception)
def server_error(request: HttpRequest, error: Exception) -> HttpResponse:
    # A JSON body like every other answer, and never the error's text: it may name a path.
    logger.exception("API error on %s", request.path)
    return api.create_response(request, {"detail": "internal server error"}, status=500)


def _run_url(run: Run) -> str:
    return f"/api/runs/{run.pk}"


@runs.post("/runs", response={**ERRORS, 202: StartedRunOut}, summary="Start a run")
def start(request: HttpRequest, response: HttpResponse, options: RunOptions):
    """Validate the options (422 naming the field, nothing started), record the run and start
    it outside the request; the Location header is the run's URL."""
    run = start_run(options.to_config(), RunSource.API)
    response["Location"] = _run_url(run)
    return Status(202, {"id": run.pk, "status": run.status, "url": _run_url(run)})


@runs.get("/runs", response={**ERRORS, 200: list[RunOut]}, summary="List runs, newest first")
@paginate(BoundedPage)
def list_runs(request: HttpRequest):
    return Run.objects.defer("summary", "progress")


@runs.get("/runs/{run_id}", response={**ERRORS, 200: RunDetailOut, 404: ErrorOut}, summary="A run")
def run_detail(request: HttpRequest, run_id: int):
    """Status, the latest progress snapshot, and the summary once finished."""
    return get_object_or_404(Run, pk=run_id)


@runs.post(
    "/runs/{run_id}/stop", response={**ERRORS, 202: RunOut, 404: ErrorOut}, summary="Stop a run"
)
def stop(request: HttpRequest, run_id: int):
    """Workers take no new record within about a second; the run ends as interrupted."""
    return Status(202, request_stop(get_object_or_404(Run.objects.defer("summary"), pk=run_id)))


@runs.get(
    "/runs/{run_id}/events",
    response={**ERRORS, 200: None, 404: ErrorOut, 503: ErrorOut},
    summary="Server-sent events: one per snapshot, then one for the end",
)
def events(request: HttpRequest, run_id: int):
    return event_stream_response(request, get_object_or_404(Run.objects.only("id"), pk=run_id))


@runs.get(
    "/runs/{run_id}/summary.json",
    response={**ERRORS, 200: dict, 404: ErrorOut, 409: ErrorOut},
    summary="A finished run's summary (insert_data --json)",
)
def summary_json(request: HttpRequest, run_id: int):
    run = get_object_or_404(Run, pk=run_id)
    if run.summary is None:
        return _no_summary(run)
    return JsonResponse(run.summary, json_dumps_params={"ensure_ascii": False})


@runs.get(
    "/runs/{run_id}/report.pdf",
    response={**ERRORS, 200: None, 404: ErrorOut, 409: ErrorOut},
    summary="A finished run's PDF report",
)
def report_pdf(request: HttpRequest, run_id: int):
    run = get_object_or_404(Run, pk=run_id)
    summary = summary_of(run)
    if summary is None:
        return _no_summary(run)
    response = HttpResponse(render_pdf(summary), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="run-{run.pk}.pdf"'
    return response


@records.get("/users", response={**ERRORS, 200: list[UserOut]}, summary="Stored users")
@paginate(BoundedPage)
def users(request: HttpRequest):
    return stored_rows(User)


@records.get("/products", response={**ERRORS, 200: list[ProductOut]}, summary="Stored products")
@paginate(BoundedPage)
def products(request: HttpRequest):
    return stored_rows(Product)


@records.get("/orders", response={**ERRORS, 200: list[OrderOut]}, summary="Stored orders")
@paginate(BoundedPage)
def orders(request: HttpRequest):
    return stored_rows(Order)


@health_router.get(
    "/health",
    response={**ERRORS, 200: HealthOut, 503: HealthOut},
    summary="Every database and the shared cache: 200 when all answer, 503 otherwise",
)
def health(request: HttpRequest):
    report = check_health()
    return Status(200 if report.healthy else 503, report.to_dict())


api.add_router("", runs)
api.add_router("", records)
api.add_router("", health_router)


def _no_summary(run: Run) -> Status:
    """409: the run has not finished, so there is nothing to render yet."""
    return Status(409, {"detail": f"run {run.pk} is {run.status}: it has no summary"})
