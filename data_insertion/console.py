"""The console view of a run: per-record lines in the seed's style and the summary table."""

from .results import InsertionResult, Status, visible
from .summary import RunSummary, SliceAttemptSummary


def record_line(result: InsertionResult) -> str:
    """ "Inserted user: Alice", "Rejected product: Keyboard - price: Ensure ..." """
    if result.model == "order":
        subject = f"order for {result.label}"
    else:
        subject = f"{result.model}: {result.label}"
    if result.status == Status.INSERTED:
        return visible(f"Inserted {subject}")
    verb = "Failed" if result.status == Status.FAILED else "Rejected"
    return visible(f"{verb} {subject} - {result.reasons}")


def summary_lines(summary: RunSummary) -> list[str]:
    config = summary.config
    data = "the demo data set" if config.get("demo_data") else f"seed {config.get('seed')}"
    if config.get("batch_size"):
        data += f", group commit of up to {config['batch_size']} records"
    # 12 wide, wider for shards' labels (products_db_0-3)
    width = max(12, *(len(model.database) for model in summary.models.values()))
    lines = [
        "",
        f"Run {summary.run_id}: {_threads(summary)} and {config['records']} records "
        f"per model, {data}, {summary.duration_seconds:.2f} s",
        *(
            ["Interrupted: workers stopped taking records; counts are what was done."]
            if summary.interrupted
            else []
        ),
        "",
        f"{'Model':<8} {'Database':<{width}} {'Attempted':>9} {'Inserted':>9} {'Rejected':>9} "
        f"{'Failed':>7} {'Wall s':>8} {'Rows/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}",
    ]
    for model in summary.models.values():
        latency = model.latency_ms
        lines.append(
            f"{model.model:<8} {model.database:<{width}} {model.attempted:>9,} "
            f"{model.inserted:>9,} {model.rejected:>9,} {model.failed:>7,} "
            f"{model.wall_seconds:>8.2f} {model.rows_per_second:>9,.0f} {latency.p50:>8.2f} "
            f"{latency.p95:>8.2f} {latency.p99:>8.2f}"
        )
    lines += shard_lines(summary)
    lines += scale_out_lines(summary)
    failures = [
        f"  {model.model}: {reason.count:,} x {reason.field}: {reason.message}"
        for model in summary.models.values()
        for reason in model.reasons
        if reason.status == Status.FAILED
    ]
    if failures:
        lines += ["", "Failed to commit, by reason:", *failures]
    lines += fault_lines(summary)
    lines += cache_lines(summary)
    lines.append("")
    lines.append(reconciliation_line(summary))
    return lines


def cache_lines(summary: RunSummary) -> list[str]:
    """The order checks through the shared cache, per model, and its warning if any."""
    if not summary.reference_cache:
        return []
    lines = ["", "Shared cache, order checks (ids):"]
    lines.extend(
        f"  {cache.model:<8} {cache.hits:>9,} hits {cache.misses:>9,} misses "
        f"({cache.hit_ratio:.0%} hits) {cache.errors:>7,} errors, time saved "
        f"{cache.saved_ms:,.1f} ms (hits x {cache.database_ms_per_id:.3f} ms a database "
        f"lookup, less {cache.cache_ms:,.1f} ms in the cache)"
        for cache in summary.reference_cache
    )
    lines.extend(f"Warning: {warning}" for warning in summary.warnings)
    return lines


def shard_lines(summary: RunSummary) -> list[str]:
    """For each sharded model, this run's rows and rows/s in each database and the skew."""
    lines = []
    for model in summary.models.values():
        if not model.database_rows:
            continue
        if not lines:
            lines.append("")
        skew = f"{model.skew:.2f}" if model.skew is not None else "-"
        lines.append(f"{model.model} rows per database (skew {skew} = largest / mean):")
        lines.extend(
            f"  {database.database:<14} {database.rows:>9,} rows {database.rows_per_second:>9,.0f}"
            " rows/s"
            for database in model.database_rows
        )
    return lines


def scale_out_lines(summary: RunSummary) -> list[str]:
    """For a spread run, where it ran: its executors and what they did, and each slice that had
    to be redone; nothing for a one-process run."""
    scale_out = summary.scale_out
    if scale_out is None:
        return []
    width = max([20, *(len(executor.executor) for executor in scale_out.executors)])
    lines = ["", f"{spread_description(summary)}:"]
    if scale_out.executors:
        lines.append(f"  {'Executor':<{width}} {'Attempts':>8} {'Inserted':>9} {'Rows/s':>9}")
    else:
        lines.append("  No executor finished a slice.")
    lines += [
        f"  {executor.executor:<{width}} {executor.attempts:>8,} {executor.inserted:>9,} "
        f"{executor.rows_per_second:>9,.0f}"
        for executor in scale_out.executors
    ]
    lines += [f"  {redone_slice_line(attempts)}" for attempts in scale_out.redone_slices()]
    return lines


def spread_description(summary: RunSummary) -> str:
    """ "Spread over 2 processes in 2 slices", "Spread over Celery workers in 8 slices"."""
    scale_out = summary.scale_out
    if scale_out.transport == "processes":
        over = f"{summary.config.get('processes', len(scale_out.executors))} processes"
    else:
        over = scale_out.transport
    return f"Spread over {over} in {scale_out.slices:,} slices"


def _threads(summary: RunSummary) -> str:
    """ "10 threads", or for a spread run "10 threads in each of 4 slices" """
    threads = f"{summary.config['threads']} threads"
    if summary.scale_out is None:
        return threads
    return f"{threads} in each of {summary.scale_out.slices:,} slices"


def redone_slice_line(attempts: list[SliceAttemptSummary]) -> str:
    """ "phase 1 slice 3 redone: attempt 1 on host:1 abandoned (its executor stopped), attempt
    2 on host:2 found 5,720 records committed and counted them once" """
    first = attempts[0]
    told = ", ".join(_attempt_outcome(attempt) for attempt in attempts)
    return f"phase {first.phase} slice {first.slice} redone: {told}"


def _attempt_outcome(attempt: SliceAttemptSummary) -> str:
    if not attempt.executor:
        return f"attempt {attempt.attempt} was never taken by an executor"
    where = f"attempt {attempt.attempt} on {attempt.executor}"
    if attempt.state != "finished":
        committed = f"after committing {attempt.inserted:,} records" if attempt.inserted else ""
        why = "; ".join(part for part in (attempt.reason, committed) if part)
        return f"{where} {attempt.state}" + (f" ({why})" if why else "")
    if attempt.found_committed:
        return f"{where} found {attempt.found_committed:,} records committed and counted them once"
    return f"{where} finished, {attempt.inserted:,} inserted"


def reconciliation_line(summary: RunSummary) -> str:
    parts = []
    for model in summary.models.values():
        found = model.rows_added if model.rows_found is None else model.rows_found
        sign = "=" if model.reconciled else "!="
        parts.append(
            f"{model.database} {found:,} found {sign} {model.inserted:,} inserted "
            f"(table +{model.rows_added:,})"
        )
    verdict = "rows reconcile" if summary.reconciled else "ROWS DO NOT RECONCILE"
    return (
        f"Reconciliation (this run's rows counted in each database): {'; '.join(parts)}: "
        f"{verdict}. "
        "To audit every row against every rule: python manage.py verify_data"
    )


def fault_lines(summary: RunSummary) -> list[str]:
    """The injected faults and the records in flight on their database meanwhile; then, per
    database, what retries and its circuit breaker did."""
    lines = []
    if summary.faults:
        lines += ["", "Faults injected:"]
    for fault in summary.faults:
        if fault.error:
            lines.append(f"  {fault.description}: NOT INJECTED ({fault.error})")
            continue
        if fault.not_reached:
            lines.append(f"  {fault.description}: not reached (the run ended first)")
            continue
        by_model = "; ".join(
            f"{model}: "
            + ", ".join(f"{count:,} {status}" for status, count in sorted(outcomes.items()))
            for model, outcomes in fault.touched.items()
        )
        lines.append(
            f"  {fault.description}: {fault.touched_total:,} records in flight"
            + (f" ({by_model})" if by_model else "")
        )
    resilience = [
        f"  {model.database}: {model.retried:,} retried, {model.failed_fast:,} failed fast "
        f"(circuit open), {model.failed_after_waiting:,} failed after waiting"
        for model in summary.models.values()
        if model.retried or model.failed
    ]
    if resilience:
        lines += ["", "Retries and circuit breakers, by database:", *resilience]
    return lines
