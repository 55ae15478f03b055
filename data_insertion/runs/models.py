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


class SpreadRun(models.Model):
    """A run spread over processes or machines (engine/scaleout.py): what each of its slices
    needs to run, read by every executor, and the flags the coordinator raises. Its id is the
    run number in its records' identity (data_insertion/identity.py)."""

    engine_run_id = models.CharField(max_length=32)
    # engine.RunPlan in JSON: the configuration, the dataset's seed and tag, the start's time
    plan = models.JSONField()
    slice_count = models.IntegerField()
    # What orders may reference, once phase 1 has ended (engine.References in JSON)
    references = models.JSONField(null=True)
    stop_requested = models.BooleanField(default=False)
    finished = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"spread run {self.pk} ({self.engine_run_id})"


class AttemptState(models.TextChoices):
    QUEUED = "queued"  # sent to the executors; none has taken it yet
    RUNNING = "running"  # an executor took it and beats
    FINISHED = "finished"  # its tally is here
    ABANDONED = "abandoned"  # its heartbeat stopped: another attempt redoes the slice


class SliceAttempt(models.Model):
    """One attempt at one slice of one phase of a spread run. An executor takes a queued attempt
    (an UPDATE that only one can win), beats while it runs, and leaves its tally when it ends;
    the coordinator abandons an attempt whose beats stop and queues the next one."""

    run = models.ForeignKey(SpreadRun, on_delete=models.CASCADE, related_name="attempts")
    phase = models.SmallIntegerField()  # 1: users and products, 2: orders
    slice_number = models.IntegerField()
    attempt = models.IntegerField()
    state = models.CharField(
        max_length=10, choices=AttemptState.choices, default=AttemptState.QUEUED
    )
    executor = models.CharField(max_length=200, blank=True)  # host:pid
    # Counted up once a heartbeat: the coordinator watches it change with its own clock, so
    # machines' clocks need not agree.
    beats = models.IntegerField(default=0)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    # The latest progress (per model: counts, latency histogram, rows per database)
    progress = models.JSONField(null=True)
    # The slice's tally in its wire form (tallies.RunTally.to_wire), once finished
    tally = models.JSONField(null=True)
    interrupted = models.BooleanField(default=False)
    # When each fault it applied itself held (engine.faults.FaultRecord by spec), once finished
    fault_records = models.JSONField(null=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["phase", "slice_number", "attempt"]
        indexes = [models.Index(fields=["run", "phase"])]

    def __str__(self) -> str:
        return f"slice {self.slice_number} phase {self.phase} attempt {self.attempt}"
