"""The shared cache's part in the order checks: hits, misses, errors and time saved per model,
as the console and the JSON show them."""

from reportlab.lib.units import mm
from reportlab.platypus import Flowable

from ..summary import RunSummary
from .formatting import format_count
from .layout import FRAME_WIDTH, Layout


def cache_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
    """Nothing for a run without a shared cache."""
    if not summary.reference_cache:
        return []
    header = ["Model", "Hits", "Misses", "Hit ratio", "Errors", "Time saved"]
    rows = [
        [
            layout.cell(cache.model),
            format_count(cache.hits),
            format_count(cache.misses),
            f"{cache.hit_ratio:.0%}",
            format_count(cache.errors),
            f"{cache.saved_ms:,.1f} ms",
        ]
        for cache in summary.reference_cache
    ]
    widths = [24 * mm] + [(FRAME_WIDTH - 24 * mm) / 5] * 5
    notes = [
        "Ids an order's checks found in the shared cache (hits), asked of the database after it "
        "(misses) or instead of it because it was unreachable (errors). Time saved: hits times "
        "this run's mean database lookup per id, less the time spent asking the cache.",
        *(f"Warning: {warning}." for warning in summary.warnings),
    ]
    return [
        layout.paragraph("Shared cache", layout.heading),
        layout.table(header, rows, widths, right_aligned_from=1),
        *(layout.paragraph(layout.text(note), layout.note) for note in notes),
    ]
