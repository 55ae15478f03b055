"""Record identity for runs spread over processes or machines: exactly once over a transport
that delivers at least once.

A slice may run twice: a broker redelivers it after its worker died, or the coordinator gives it
to another executor when its heartbeat stops. Each record of such a run carries a key made of
the run's number, its slice and its index, stored in the row (`record_key`, a plain index). The
write transaction looks the batch's keys up before it inserts (services._commit_to) and counts a
record found as committed by the earlier attempt instead of inserting it again; a lock per record
(record_lock_key) makes two attempts writing it take turns on PostgreSQL and MariaDB, as
SQLite's single writer does anyway.

    bits 63..40: run number   39..24: slice   23..0: the record's index in the run
"""

RUN_BITS = 23
SLICE_BITS = 16
INDEX_BITS = 24
MAX_RUN_NUMBER = 2**RUN_BITS - 1
MAX_SLICES = 2**SLICE_BITS
MAX_INDEX = 2**INDEX_BITS - 1


def record_key(run_number: int, slice_number: int, index: int) -> int:
    if not (0 < run_number <= MAX_RUN_NUMBER and 0 <= slice_number < MAX_SLICES):
        raise ValueError(f"no record key for run {run_number}, slice {slice_number}")
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"record index {index} is beyond {MAX_INDEX:,}")
    return (run_number << (SLICE_BITS + INDEX_BITS)) | (slice_number << INDEX_BITS) | index


def index_of_key(key: int) -> int:
    return key & MAX_INDEX


def record_lock_key(key: int) -> str:
    """The lock a write of the record holds: two attempts of its slice never insert it at once
    (a lock per record, as for emails; one per slice made a slice's threads take turns on
    PostgreSQL)."""
    return f"record:{key}"
