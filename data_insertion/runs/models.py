"""Bookkeeping in the default database: runs, their progress snapshots, and API tokens."""

from datetime import timedelta

from django.db import models
from django.utils import timezone


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"  # ran to its end; whether it passed is its verdict
    FAILED = "failed"  # could not be carried out (a database unavailable, a crash)
    INTERRUPTED = "interrupted"  # stopped (Ctrl-C, the stop button, the API)


FINISHED_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.INTERRUPTED})

# A running run whose last sign of life (its start, its latest snapshot, one a second) is
# older than this is shown as lost: its process was killed (SIGKILL, a power cut) unrecorded.
LOST_AFTER = timedelta(seconds=10)


class RunSource(models.TextChoices):
    COMMAND = "command"
    DASHBOARD = "dashboard"
    API = "api"


class Run(models.Model):
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    source = models.CharField(max_length=12, choices=RunSource.choices)
    # SimulationConfig's fields: threads, records, seed, invalid_ratio, fresh, batch_size
    config = models.JSONField()
    # host, process id, Python, Django: where it ran
    environment = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    # when the run last showed it was alive: its start, then each progress snapshot
    heartbeat_at = models.DateTimeField(null=True)
    # the engine's own id, as the console, the JSON and the PDF show it
    engine_run_id = models.CharField(max_length=32, blank=True)
    stop_requested = models.BooleanField(default=False)
    # the latest progress snapshot, so a status request reads one row
    progress = models.JSONField(null=True)
    # the --json document, once finished
    summary = models.JSONField(null=True)
    # from the summary, so lists never load summaries (hundreds of KB each)
    rows_per_second = models.FloatField(null=True)
    p95_ms = models.FloatField(null=True)
    verdict = models.TextField(blank=True)
    passed = models.BooleanField(null=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def lost(self) -> bool:
        """Recorded as running, but silent for longer than LOST_AFTER: it will never end."""
        last_seen = self.heartbeat_at or self.started_at or self.created_at
        return self.status == RunStatus.RUNNING and timezone.now() - last_seen > LOST_AFTER

    @property
    def shown_status(self) -> str:
        """The status as the dashboard and `runs` show it: "lost" for a lost run."""
        return "lost" if self.lost else self.status


class RunSnapshot(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="snapshots")
    sequence = models.PositiveIntegerField()
    # engine.progress.ProgressSnapshot as the API's SnapshotOut publishes it
    data = models.JSONField()

    class Meta:
        ordering = ["sequence"]
        constraints = [
            models.UniqueConstraint(fields=["run", "sequence"], name="one_snapshot_per_sequence")
        ]

    def __str__(self) -> str:
        return f"snapshot {self.sequence} of run {self.run_id}"


class ApiToken(models.Model):
    name = models.CharField(max_length=100)
    # SHA-256 of the token: the token itself is shown once, when it is created
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return self.name
