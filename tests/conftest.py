import os
import uuid

import pytest
import redis

from data_insertion.topology.breakers import reset_breakers
from data_insertion.topology.shared_cache import SHARED_CACHE, cache_settings
from tests.servers import Deployment, server

# Threads cannot share a test's transaction: tests that start workers use real transactions
# on every database.
all_databases = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def output_dir(tmp_path):
    """A directory for files a test writes (JSON, PDF), never the repository."""
    return tmp_path


@pytest.fixture(autouse=True)
def closed_breakers():
    """Each test starts with every database's circuit breaker closed, as each run does."""
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture
def postgres():
    """The PostgreSQL server DS_TEST_POSTGRES_URL names (else the test is skipped); the
    databases a test makes on it are dropped afterwards."""
    found = server("postgresql")
    yield found
    found.drop_databases()


@pytest.fixture
def mariadb():
    found = server("mysql")
    yield found
    found.drop_databases()


@pytest.fixture(params=["postgresql", "mysql"], ids=["postgresql", "mariadb"])
def any_server(request):
    found = server(request.param)
    yield found
    found.drop_databases()


@pytest.fixture
def deployment(tmp_path):
    """Aliases not placed on a server stay SQLite files in the test's own directory."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return Deployment(data_dir)


# The Redis the cache tests use (database 1 of the local server unless named); each test has
# its own key prefix and deletes its keys: others share the server, so nothing flushes it.
REDIS_URL = os.environ.get("DS_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
# Nothing listens there: a Redis that is down.
CLOSED_PORT_URL = "redis://127.0.0.1:1/1"


def redis_or_skip(url: str = REDIS_URL, variable: str = "DS_TEST_REDIS_URL") -> redis.Redis:
    """A client of the Redis at `url`; the test is skipped without one (failed under CI)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis at {url} ({error}): set {variable}")
    return client


def point_cache_at(settings, url: str, prefix: str, ttl: int = 300) -> None:
    """The shared cache at `url` under the test's key `prefix`, entries living `ttl` s."""
    settings.CACHES = {
        **settings.CACHES,
        SHARED_CACHE: {**cache_settings(url, {}), "KEY_PREFIX": prefix},
    }
    settings.REFERENCE_CACHE_TTL_SECONDS = ttl


@pytest.fixture
def prefix():
    """This test's own key prefix, its keys deleted afterwards."""
    client = redis_or_skip()
    prefix = f"ds-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
