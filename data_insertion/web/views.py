"""The dashboard, for staff accounts: the runs, a run's live page, starting and stopping runs,
comparing two, and the health of the databases and the cache. Views parse, call the runs app,
render."""

import math

from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..console import redone_slice_line, spread_description
from ..health import check_health
from ..report import render_pdf
from ..runs.comparison import compare_summaries
from ..runs.models import Run, RunSource
from ..runs.recording import request_stop, run_config, start_run, summary_of
from ..summary import RunSummary
from ..topology import MODEL_DATABASES
from .events import event_stream_response
from .forms import CompareForm, StartRunForm
from .schemas import HealthOut, SnapshotOut

RUNS_PER_PAGE = 25


@staff_member_required
def run_list(request: HttpRequest) -> HttpResponse:
    runs = Paginator(Run.objects.defer("summary", "progress"), RUNS_PER_PAGE)
    return render(
        request,
        "web/run_list.html",
        {
            "page": runs.get_page(request.GET.get("page")),
            "start_form": StartRunForm(),
            "compare_form": CompareForm(),
        },
    )


@staff_member_required
@require_POST
def start(request: HttpRequest) -> HttpResponse:
    form = StartRunForm(request.POST)
    if not form.is_valid():
        runs = Paginator(Run.objects.defer("summary", "progress"), RUNS_PER_PAGE)
        context = {"page": runs.get_page(1), "start_form": form, "compare_form": CompareForm()}
        return render(request, "web/run_list.html", context, status=400)
    run = start_run(form.to_config(), RunSource.DASHBOARD)
    return redirect("web:run", run_id=run.pk)


@staff_member_required
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=run_id)
    snapshots = [
        SnapshotOut.model_validate(snapshot.data).model_dump(mode="json")
        for snapshot in run.snapshots.all()
    ]
    summary = summary_of(run)
    return render(
        request,
        "web/run.html",
        {
            "run": run,
            "summary": summary,
            "snapshots": snapshots,
            "fault_windows": _fault_windows(run, summary),
            "spread": _spread(summary),
            "last_sequence": snapshots[-1]["sequence"] if snapshots else 0,
            "progress_rows": run.progress["models"] if run.progress else _no_progress(),
        },
    )


def _fault_windows(run: Run, summary: RunSummary | None) -> list[dict]:
    """The run's faults as bands for the throughput chart, in seconds from its start (`end`
    None: all run long): as they were applied once finished, as planned before."""
    if summary is not None:
        return [
            {"label": fault.spec, "start": fault.start_seconds, "end": fault.end_seconds}
            for fault in summary.faults
            if fault.error is None
        ]
    windows = []
    for fault in run_config(run).faults:
        end = None if math.isinf(fault.end) else fault.end
        windows.append({"label": fault.spec, "start": fault.start, "end": end})
    return windows


def _spread(summary: RunSummary | None) -> dict | None:
    """A finished spread run's executors and redone slices, in the console's words."""
    if summary is None or summary.scale_out is None:
        return None
    return {
        "description": spread_description(summary),
        "executors": summary.scale_out.executors,
        "redone": [redone_slice_line(attempts) for attempts in summary.scale_out.redone_slices()],
    }


def _no_progress() -> list[dict]:
    return [
        {"model": model, "database": database, "committed": 0, "rejected": 0, "failed": 0}
        for model, database in MODEL_DATABASES.items()
    ]


@staff_member_required
@require_POST
def stop(request: HttpRequest, run_id: int) -> HttpResponse:
    request_stop(get_object_or_404(Run.objects.defer("summary"), pk=run_id))
    return redirect("web:run", run_id=run_id)


@staff_member_required
def events(request: HttpRequest, run_id: int) -> HttpResponse:
    return event_stream_response(request, get_object_or_404(Run.objects.only("id"), pk=run_id))


@staff_member_required
def summary_json(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=run_id, summary__isnull=False)
    response = JsonResponse(run.summary, json_dumps_params={"ensure_ascii": False, "indent": 2})
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.json"'
    return response


@staff_member_required
def report_pdf(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=run_id, summary__isnull=False)
    response = HttpResponse(render_pdf(summary_of(run)), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="run-{run.pk}.pdf"'
    return response


@staff_member_required
def health(request: HttpRequest) -> JsonResponse:
    """The health panel's data, as GET /api/health gives it (503 when anything is down)."""
    report = check_health()
    body = HealthOut.model_validate(report.to_dict()).model_dump(mode="json")
    return JsonResponse(body, status=200 if report.healthy else 503)


@staff_member_required
def compare(request: HttpRequest) -> HttpResponse:
    form = CompareForm(request.GET)
    if not form.is_valid():
        return render(request, "web/compare.html", {"form": form}, status=400)
    baseline = get_object_or_404(Run, pk=form.cleaned_data["baseline"], summary__isnull=False)
    candidate = get_object_or_404(Run, pk=form.cleaned_data["candidate"], summary__isnull=False)
    max_regression = form.cleaned_data["max_regression"]
    max_regression = 10.0 if max_regression is None else max_regression
    comparisons = compare_summaries(
        summary_of(baseline), summary_of(candidate), max_regression / 100
    )
    return render(
        request,
        "web/compare.html",
        {
            "form": form,
            "baseline": baseline,
            "candidate": candidate,
            "max_regression": max_regression,
            "comparisons": comparisons,
            "regressions": sum(row.regression for row in comparisons),
        },
    )
