from django import forms

from ..engine import SimulationConfig
from ..engine.config import check_spread
from ..engine.faults import Fault, FaultSpecError, check_supported, parse_fault
from ..management.options import (
    MAX_BATCH_SIZE,
    MAX_PROCESSES,
    MAX_RECORDS,
    MAX_SEED,
    MAX_THREADS,
)


class StartRunForm(forms.Form):
    """insert_data's options with its bounds (insert_data --help)."""

    threads = forms.IntegerField(min_value=1, max_value=MAX_THREADS, initial=10)
    records = forms.IntegerField(min_value=0, max_value=MAX_RECORDS, initial=2000)
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, required=False)
    invalid_ratio = forms.FloatField(min_value=0, max_value=1, initial=0.1)
    batch_size = forms.IntegerField(
        min_value=1,
        max_value=MAX_BATCH_SIZE,
        required=False,
        help_text="group commit; empty: one transaction per record",
    )
    fresh = forms.BooleanField(required=False, help_text="empty the three databases first")
    processes = forms.IntegerField(
        min_value=1, max_value=MAX_PROCESSES, initial=1, required=False, help_text="local processes"
    )
    celery = forms.BooleanField(required=False, help_text="on Celery workers instead")
    faults = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 30}),
        help_text="one a line, as insert_data --fault: users_db:lock:2s@1s",
    )

    def clean_faults(self) -> tuple[Fault, ...]:
        try:
            faults = tuple(parse_fault(line) for line in self.cleaned_data["faults"].split())
            check_supported(list(faults))
        except FaultSpecError as error:
            raise forms.ValidationError(str(error)) from None
        return faults

    def clean_processes(self) -> int:
        return self.cleaned_data["processes"] or 1

    def clean(self) -> dict:
        cleaned = super().clean()
        try:
            check_spread(cleaned.get("processes", 1), cleaned.get("celery", False), None)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return cleaned

    def to_config(self) -> SimulationConfig:
        return SimulationConfig(**self.cleaned_data)


class CompareForm(forms.Form):
    baseline = forms.IntegerField(min_value=1)
    candidate = forms.IntegerField(min_value=1)
    max_regression = forms.FloatField(
        min_value=0, max_value=1000, initial=10, required=False, label="max regression %"
    )
