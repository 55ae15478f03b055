"""Shards as numbers: ids that carry their logical shard, where a record's logical shard comes
from, how many databases each model is configured with, and which database holds each logical
shard (an assignment, even at first, rebalanced with as few moves as possible).

Pure Python: settings import it, and the property tests need no database. The assignment in
force lives in the default database (shardmap.py); this module only computes them.

An id is 63 bits: the logical shard in the top 12, a sequence within that logical shard in the
51 below (Instagram's ids put a time there too; a per-shard sequence taken under the shard's
write lock needs no clock and never collides). Any id routes to its database with no lookup
but the assignment: logical_shard_of_id(id) -> assignment[logical shard] -> database.
"""

import hashlib
import itertools
import random
from collections.abc import Iterable, Mapping

from django.core.exceptions import ImproperlyConfigured

LOGICAL_SHARDS = 4096
SEQUENCE_BITS = 51
SEQUENCE_LIMIT = 1 << SEQUENCE_BITS  # sequences run from 1 to SEQUENCE_LIMIT - 1
MAX_DATABASES = 64
SHARDS_VARIABLE = "DS_SHARDS"
MODEL_SHARDS_VARIABLES = {
    "user": "USERS_SHARDS",
    "product": "PRODUCTS_SHARDS",
    "order": "ORDERS_SHARDS",
}
# One character per logical shard, naming its database: the assignment of 4,096 logical shards
# is one 4 KiB string, read and written in one row.
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
assert len(DIGITS) == MAX_DATABASES


def make_id(logical_shard: int, sequence: int) -> int:
    """The id of the `sequence`-th row of `logical_shard`."""
    if not 0 <= logical_shard < LOGICAL_SHARDS:
        raise ValueError(f"logical shard {logical_shard} is outside 0..{LOGICAL_SHARDS - 1}")
    if not 0 < sequence < SEQUENCE_LIMIT:
        raise ValueError(f"sequence {sequence} is outside 1..{SEQUENCE_LIMIT - 1}")
    return (logical_shard << SEQUENCE_BITS) | sequence


def logical_shard_of_id(row_id: int) -> int:
    """The logical shard an id carries. Any 64-bit integer maps to one (a negative or
    made-up id of an order's user routes somewhere, where it is then not found)."""
    return (row_id >> SEQUENCE_BITS) % LOGICAL_SHARDS


def sequence_of_id(row_id: int) -> int:
    return row_id & (SEQUENCE_LIMIT - 1)


def id_range(logical_shard: int) -> tuple[int, int]:
    """The ids of `logical_shard`: low <= id < high."""
    return logical_shard << SEQUENCE_BITS, (logical_shard + 1) << SEQUENCE_BITS


def id_ranges(logical_shards: Iterable[int]) -> list[tuple[int, int]]:
    """The ids of several logical shards as few ranges (consecutive shards have consecutive
    ids), so that a statement about a thousand logical shards has a handful of conditions."""
    ranges: list[tuple[int, int]] = []
    for shard in sorted(set(logical_shards)):
        low, high = id_range(shard)
        if ranges and ranges[-1][1] == low:
            ranges[-1] = (ranges[-1][0], high)
        else:
            ranges.append((low, high))
    return ranges


def logical_shard_of_email(email_normalized: str) -> int:
    """A user's logical shard: from its case-folded email, so that every spelling of one address
    lands in one database and the uniqueness check there sees them all."""
    digest = hashlib.blake2b(email_normalized.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % LOGICAL_SHARDS


# Products go round the logical shards (each process from its own random start) in bit-reversed
# order, so that any run of consecutive products is spread evenly over every block of
# consecutive logical shards, as databases hold them: in plain order, 3,600 products over 4,096
# logical shards left one database of four with half the others' rows. itertools.count's
# next() is atomic under the GIL.
_product_shards = itertools.count(random.randrange(LOGICAL_SHARDS))
_SHARD_BITS = LOGICAL_SHARDS.bit_length() - 1


def next_product_shard() -> int:
    return spread_shard(next(_product_shards))


def spread_shard(turn: int) -> int:
    """The `turn`-th logical shard in bit-reversed order: consecutive turns spread evenly."""
    return int(f"{turn % LOGICAL_SHARDS:0{_SHARD_BITS}b}"[::-1], 2)


def configured_shard_counts(environ: Mapping[str, str]) -> dict[str, int]:
    """How many databases each model is configured with: DS_SHARDS for all, USERS_SHARDS and the
    others for one. A bad value raises ImproperlyConfigured, one line naming the variable."""
    default = _shard_count(environ, SHARDS_VARIABLE, 1)
    return {
        model: _shard_count(environ, variable, default)
        for model, variable in MODEL_SHARDS_VARIABLES.items()
    }


def _shard_count(environ: Mapping[str, str], variable: str, default: int) -> int:
    text = environ.get(variable, "").strip()
    if not text:
        return default
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_DATABASES:
        raise ImproperlyConfigured(
            f"{variable}={text!r} is not a whole number of databases from 1 to {MAX_DATABASES}"
        )
    return count


def shard_alias(base_alias: str, index: int) -> str:
    """users_db -> users_db_0, users_db_1, ..."""
    return f"{base_alias}_{index}"


def shard_filename(filename: str, index: int) -> str:
    """users.db -> users_0.db, users_1.db, ..."""
    stem, dot, suffix = filename.rpartition(".")
    return f"{stem}_{index}{dot}{suffix}"


def even_assignment(databases: int) -> str:
    """Logical shards in `databases` contiguous runs of (nearly) equal length."""
    return "".join(DIGITS[shard * databases // LOGICAL_SHARDS] for shard in range(LOGICAL_SHARDS))


def rebalanced_assignment(current: str, databases: int) -> str:
    """An assignment over `databases` databases, each holding LOGICAL_SHARDS / databases
    logical shards (one more for the first few when it does not divide), that moves as few
    logical shards as possible from `current`: a database keeps its shards up to its share
    (the lowest ones), and the shards it gives up fill the databases short of theirs."""
    share = [
        LOGICAL_SHARDS // databases + (index < LOGICAL_SHARDS % databases)
        for index in range(databases)
    ]
    kept = [0] * databases
    result = [""] * LOGICAL_SHARDS
    homeless = []
    for shard, digit in enumerate(current):
        index = DIGITS.index(digit)
        if index < databases and kept[index] < share[index]:
            result[shard] = digit
            kept[index] += 1
        else:
            homeless.append(shard)
    short = (index for index in range(databases) for _ in range(share[index] - kept[index]))
    for shard, index in zip(homeless, short, strict=True):
        result[shard] = DIGITS[index]
    return "".join(result)


def database_index(digit: str) -> int:
    return DIGITS.index(digit)
