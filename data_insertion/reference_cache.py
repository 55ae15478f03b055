"""The shared cache of "this user / product exists", consulted by an order's reference checks.

Every order asks the users and products databases (or their shards, perhaps on other machines)
whether its user and product exist; with DS_CACHE_URL set, the positive answers are kept in
Redis (Django's built-in RedisCache), shared by every thread, process and machine, for
DS_CACHE_TTL seconds. A miss always asks the database; a negative answer is never stored.

The promise: once a delete (or a change) made through Django has returned, no check that starts
afterwards finds the row in the cache. What keeps it:

- Deleting or changing a user or product (the admin, the ORM) writes a tombstone for its id and
  removes its entry, from the post_delete / post_save signal, inside the delete's transaction
  and again once it commits. A check that finds a tombstone asks the database and stores
  nothing. A check that read the database just before the delete may still store its (now
  stale) entry just after the invalidation; the tombstone, which lives twice the entry's
  lifetime, hides that entry for its whole life (a check stores nothing once half a lifetime
  has passed since it read the cache).
- Emptying the databases (--fresh) changes each model's epoch: a random token every entry
  carries, so all of its entries stop counting at once. The benchmark's temporary databases
  use no cache, or one with keys of their own.

What it cannot promise: a delete made outside Django (SQL typed into psql) sends no signal, and
its row stays "existing" in the cache for up to DS_CACHE_TTL seconds. A delete the cache cannot
hear of (Redis unreachable) is refused: its transaction rolls back with CacheUnreachable.

Reads never fail a record: with Redis unreachable (a short socket timeout), checks go to the
database and are counted as errors; after an error the cache is left alone for a second (a
breaker of its own), so a dead cache does not cost a timeout per order.
"""

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .topology.breakers import CircuitBreaker, CircuitOpen
from .topology.shared_cache import SHARED_CACHE, cache_location

# Models whose existence is cached, by model name.
CACHED_MODELS = ("user", "product")
# A tombstone outlives every entry a check that raced with the delete could store.
TOMBSTONE_LIFETIMES = 2
# An epoch that expires is replaced by a new one, and its model's entries all miss once: safe,
# and no key is kept for ever (the benchmark's own keys all go away).
EPOCH_LIFETIME_SECONDS = 24 * 3600
# After a cache error, checks leave the cache alone this long.
COOL_DOWN_SECONDS = 1.0


# Each model's lookup in its databases: which of these ids exist.
Lookups = dict[str, Callable[[list[int]], set[int]]]


class CacheUnreachable(Exception):
    """The shared cache could not be told of a delete or change: it must not happen."""


@dataclass
class CacheCounts:
    """What one model's checks found in the cache: ids found there (hits), ids asked of the
    database although the cache was asked (misses), ids asked of the database because the
    cache could not be (errors); and the time the database lookups and the cache took."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    database_ids: int = 0
    database_seconds: float = 0.0
    cache_seconds: float = 0.0

    def add(self, other: "CacheCounts") -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    @property
    def database_seconds_per_id(self) -> float:
        return self.database_seconds / self.database_ids if self.database_ids else 0.0


class ReferenceCache:
    """The process's view of the shared cache: one client (a thread-safe connection pool) for
    every thread, its breaker and its counts."""

    def __init__(self, key_prefix: str | None = None) -> None:
        """`key_prefix`: keys of their own (the benchmark's), instead of the deployment's."""
        # Loaded with the first cache: a run without one never loads redis (27 ms of each start).
        from django.core.cache.backends.redis import RedisCache
        from redis.exceptions import RedisError

        self.failures = (RedisError, OSError)
        configured = settings.CACHES[SHARED_CACHE]
        self.url = configured["LOCATION"]
        self.ttl = settings.REFERENCE_CACHE_TTL_SECONDS
        if key_prefix is None:
            self.store = caches.create_connection(SHARED_CACHE)
        else:
            self.store = RedisCache(self.url, {**configured, "KEY_PREFIX": key_prefix})
        self.breaker = CircuitBreaker("cache", threshold=1, cool_down=COOL_DOWN_SECONDS)
        self.counts = {model: CacheCounts() for model in CACHED_MODELS}
        self._lock = threading.Lock()

    def existing_ids(self, wanted: dict[str, list[int]], lookups: Lookups) -> dict[str, set[int]]:
        """Which of each model's `wanted` ids exist: those the cache vouches for, and those
        its lookup finds in the database (then stored in the cache for the next check). One
        round trip reads every model's entries; one more stores what the databases found."""
        started = time.perf_counter()
        counts = {model: CacheCounts() for model in wanted}
        found = self._read(wanted)
        if found is None:
            existing = {}
            for model, ids in wanted.items():
                counts[model].errors = len(ids)
                existing[model] = self._look_up(ids, lookups[model], counts[model])
            self._count(counts)
            return existing
        epochs, entries = found
        read_seconds = time.perf_counter() - started
        existing, storable = {}, {}
        for model, ids in wanted.items():
            epoch = epochs[model]
            # A tombstone hides an entry a check that raced with the delete may have stored.
            hits = {
                pk
                for pk in ids
                if entries.get(_entry_key(model, pk)) == epoch
                and _tombstone_key(model, pk) not in entries
            }
            missing = [pk for pk in ids if pk not in hits]
            counts[model].hits, counts[model].misses = len(hits), len(missing)
            counts[model].cache_seconds = read_seconds / len(wanted)
            looked_up = self._look_up(missing, lookups[model], counts[model])
            storable.update(
                (_entry_key(model, pk), epoch)
                for pk in looked_up
                if _tombstone_key(model, pk) not in entries
            )
            existing[model] = hits | looked_up
        # A check slower than half a lifetime could outlast a tombstone written meanwhile.
        if storable and time.perf_counter() - started < self.ttl / 2:
            stored = time.perf_counter()
            self._call(lambda: self.store.set_many(storable, timeout=self.ttl))
            for model in wanted:
                counts[model].cache_seconds += (time.perf_counter() - stored) / len(wanted)
        self._count(counts)
        return existing

    def _read(self, wanted: dict[str, list[int]]) -> tuple[dict[str, str], dict] | None:
        """Each model's epoch, and the cache's entries and tombstones for the `wanted` ids,
        in one round trip; None when the cache cannot be asked."""
        keys = [_epoch_key(model) for model in wanted]
        for model, ids in wanted.items():
            for pk in ids:
                keys += (_entry_key(model, pk), _tombstone_key(model, pk))
        entries = self._call(lambda: self.store.get_many(keys))
        if entries is None:
            return None
        epochs = {}
        for model in wanted:
            epoch = entries.get(_epoch_key(model))
            if epoch is None:  # first use, or the key was lost: a new epoch, set by one
                epoch = self._call(lambda model=model: self._new_epoch(model))
                if epoch is None:
                    return None
            epochs[model] = epoch
        return epochs, entries

    def _new_epoch(self, model: str) -> str:
        self.store.add(_epoch_key(model), uuid.uuid4().hex, timeout=EPOCH_LIFETIME_SECONDS)
        return self.store.get(_epoch_key(model))

    @staticmethod
    def _look_up(
        ids: list[int], lookup: Callable[[list[int]], set[int]], counts: CacheCounts
    ) -> set[int]:
        if not ids:
            return set()
        started = time.perf_counter()
        existing = lookup(ids)
        counts.database_seconds += time.perf_counter() - started
        counts.database_ids += len(ids)
        return existing

    def _call(self, operation: Callable):
        """The operation's answer, or None when the cache failed or its breaker is open."""
        try:
            self.breaker.admit()
        except CircuitOpen:
            return None
        try:
            answer = operation()
        except self.failures as error:
            self.breaker.failed(error)
            return None
        self.breaker.succeeded()
        return answer

    def _count(self, counts: dict[str, CacheCounts]) -> None:
        with self._lock:
            for model, count in counts.items():
                self.counts[model].add(count)

    def invalidate(self, model: str, ids: Iterable[int]) -> None:
        """Tombstones for `ids`, then their entries removed; CacheUnreachable when the cache
        cannot be told (the breaker is not asked: this must reach Redis)."""
        ids = list(ids)
        try:
            self.store.set_many(
                {_tombstone_key(model, pk): 1 for pk in ids},
                timeout=self.ttl * TOMBSTONE_LIFETIMES,
            )
            self.store.delete_many([_entry_key(model, pk) for pk in ids])
        except self.failures as error:
            raise CacheUnreachable(
                f"the shared cache ({cache_location(self.url)}) could not be told that {model} "
                f"{', '.join(map(str, ids))} changed ({error}); the change is not made, so that "
                "no check finds it in the cache"
            ) from error

    def forget_all(self, model: str) -> None:
        """Every entry of `model` stops counting: a new epoch."""
        try:
            self.store.set(_epoch_key(model), uuid.uuid4().hex, timeout=EPOCH_LIFETIME_SECONDS)
        except self.failures as error:
            raise CacheUnreachable(
                f"the shared cache ({cache_location(self.url)}) could not be told that every "
                f"{model} was deleted ({error})"
            ) from error

    def take_counts(self) -> dict[str, CacheCounts]:
        """The counts since the last call, which starts them again."""
        with self._lock:
            taken, self.counts = self.counts, {model: CacheCounts() for model in CACHED_MODELS}
        return taken


def _entry_key(model: str, pk: int) -> str:
    return f"exists:{model}:{pk}"


def _tombstone_key(model: str, pk: int) -> str:
    return f"gone:{model}:{pk}"


def _epoch_key(model: str) -> str:
    return f"epoch:{model}"


_shared: ReferenceCache | None = None
_guard = threading.Lock()
_CONFIGURED = object()
_replacement: object = _CONFIGURED


def shared_cache() -> ReferenceCache | None:
    """The process's ReferenceCache, or None when DS_CACHE_URL is unset."""
    global _shared
    if _replacement is not _CONFIGURED:
        return _replacement
    if _shared is None and SHARED_CACHE in settings.CACHES:
        with _guard:
            if _shared is None:
                _shared = ReferenceCache()
    return _shared


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs) -> None:
    """Tests that point the cache elsewhere get a new client."""
    global _shared
    if setting in {"CACHES", "REFERENCE_CACHE_TTL_SECONDS"}:
        with _guard:
            _shared = None


@contextmanager
def replaced(cache: ReferenceCache | None) -> Iterator[None]:
    """Every thread's checks use `cache` (None: no cache) while the block runs: the
    benchmark's runs on its temporary databases, whose ids mean nothing to the deployment."""
    global _replacement
    saved, _replacement = _replacement, cache
    try:
        yield
    finally:
        _replacement = saved


def existing_ids(wanted: dict[str, list[int]], lookups: Lookups) -> dict[str, set[int]]:
    """Which of each model's `wanted` ids (distinct) exist: through the shared cache when
    there is one, else each model's lookup in its databases."""
    cache = shared_cache()
    if cache is None:
        return {model: lookups[model](ids) for model, ids in wanted.items()}
    return cache.existing_ids(wanted, lookups)


def invalidate(model: str, ids: Iterable[int], using: str) -> None:
    """Make a delete or change of `ids` (in a transaction on `using`) visible to every check:
    now, and again when the transaction commits."""
    cache = shared_cache()
    if cache is None or model not in CACHED_MODELS:
        return
    ids = list(ids)
    cache.invalidate(model, ids)
    # A transaction that outlasts the tombstone would let a check store its row again.
    transaction.on_commit(lambda: cache.invalidate(model, ids), using=using, robust=True)


@receiver(post_delete, sender="data_insertion.User")
@receiver(post_delete, sender="data_insertion.Product")
def _deleted(*, instance: Model, using: str, **kwargs) -> None:
    invalidate(instance._meta.model_name, [instance.pk], using)


@receiver(post_save, sender="data_insertion.User")
@receiver(post_save, sender="data_insertion.Product")
def _changed(*, instance: Model, created: bool, using: str, **kwargs) -> None:
    # A new row needs nothing: only rows seen to exist are cached. The engine's inserts do
    # not go through save() at all.
    if not created:
        invalidate(instance._meta.model_name, [instance.pk], using)


def forget_all(models: Iterable[str] = CACHED_MODELS) -> None:
    """Every entry of `models` stops counting (their tables were emptied, or swapped)."""
    cache = shared_cache()
    if cache is None:
        return
    for model in models:
        if model in CACHED_MODELS:
            cache.forget_all(model)


def take_counts() -> dict[str, CacheCounts] | None:
    """Each model's counts since the last call, or None when there is no shared cache."""
    cache = shared_cache()
    return None if cache is None else cache.take_counts()
