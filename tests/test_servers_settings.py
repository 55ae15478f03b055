"""Database URLs, connection permits and the MariaDB connection pool, without a server."""

import os
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from data_insertion.topology import databases
from data_insertion.topology.connections import FairSemaphore, connection_permits
from distributed_system import settings as project_settings
from distributed_system.backends.mysql.base import IdleConnections


def configured_database(variable: str, filename: str) -> dict:
    """The alias `variable` configures, with the project's settings and this environment."""
    alias = {v: a for a, v in databases.URL_VARIABLES.items()}[variable]
    return databases.configured_database(
        alias,
        os.environ,
        project_settings.DATA_DIR,
        project_settings.SQLITE_TIMEOUT_SECONDS,
        project_settings.MAX_CONNECTIONS_PER_DATABASE,
    )


def server_database(url: str) -> dict:
    return databases.server_database(url, project_settings.MAX_CONNECTIONS_PER_DATABASE)


def test_an_unset_url_means_the_sqlite_file_in_the_data_directory(monkeypatch):
    monkeypatch.delenv("USERS_DATABASE_URL", raising=False)
    database = configured_database("USERS_DATABASE_URL", "users.db")
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == project_settings.DATA_DIR / "users.db"
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_a_sqlite_url_keeps_the_settings_for_concurrent_writers(monkeypatch, tmp_path):
    monkeypatch.setenv("ORDERS_DATABASE_URL", f"sqlite:///{tmp_path}/orders.sqlite3")
    database = configured_database("ORDERS_DATABASE_URL", "orders.db")
    assert database["NAME"] == tmp_path / "orders.sqlite3"
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]


def test_a_postgresql_url_gets_a_pool_as_large_as_the_connection_cap():
    database = server_database("postgres://app:s3cret@db.example.com:6432/users")
    assert database["ENGINE"] == "distributed_system.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == (
        "db.example.com",
        6432,
        "users",
    )
    assert (database["USER"], database["PASSWORD"]) == ("app", "s3cret")
    assert database["OPTIONS"]["pool"]["max_size"] == project_settings.MAX_CONNECTIONS_PER_DATABASE
    assert database["CONN_MAX_AGE"] == 0  # Django's pool refuses persistent connections


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
def test_a_mariadb_url_uses_the_pooled_mysql_backend(scheme):
    database = server_database(f"{scheme}://root@127.0.0.1:3306/products")
    assert database["ENGINE"] == "distributed_system.backends.mysql"
    assert database["NAME"] == "products"
    assert database["OPTIONS"]["pool"]["max_size"] == project_settings.MAX_CONNECTIONS_PER_DATABASE


@pytest.mark.parametrize("url", ["oracle://scott:tiger@db:1521/orders", "redis://:tiger@db:6379"])
def test_an_unsupported_url_is_refused_naming_the_variable_but_not_the_password(monkeypatch, url):
    monkeypatch.setenv("ORDERS_DATABASE_URL", url)
    with pytest.raises(ImproperlyConfigured, match="postgres://, mysql://") as refused:
        configured_database("ORDERS_DATABASE_URL", "orders.db")
    assert str(refused.value).startswith("ORDERS_DATABASE_URL: ")
    assert "tiger" not in str(refused.value)


def test_one_connection_of_the_cap_is_left_for_the_main_thread(settings):
    settings.MAX_CONNECTIONS_PER_DATABASE = 20
    assert connection_permits("users_db") == 19
    settings.MAX_CONNECTIONS_PER_DATABASE = 2
    assert connection_permits("users_db") == 1


def test_fair_semaphore_serves_waiting_threads_in_arrival_order():
    semaphore = FairSemaphore(1)
    assert semaphore.acquire(timeout=1)
    served = []

    def wait(number: int) -> None:
        assert semaphore.acquire(timeout=30)
        served.append(number)
        semaphore.release()

    threads = []
    for number in range(5):
        thread = threading.Thread(target=wait, args=(number,))
        thread.start()
        threads.append(thread)
        while semaphore.waiting < number + 1:  # queued before the next one starts
            time.sleep(0.001)
    semaphore.release()
    for thread in threads:
        thread.join()
    assert served == [0, 1, 2, 3, 4]


def test_fair_semaphore_gives_up_after_its_timeout_and_leaves_the_queue():
    semaphore = FairSemaphore(1)
    assert semaphore.acquire(timeout=1)
    assert not semaphore.acquire(timeout=0.01)
    assert semaphore.waiting == 0
    semaphore.release()
    assert semaphore.acquire(timeout=0)


class FakeConnection:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_idle_connections_are_reused_newest_first_and_capped():
    pool = IdleConnections(max_size=2)
    first, second, third = FakeConnection(), FakeConnection(), FakeConnection()
    assert pool.give(first) and pool.give(second)
    assert not pool.give(third)  # the caller closes it
    assert pool.take() is second
    assert pool.take() is first
    assert pool.take() is None


def test_a_connection_idle_too_long_is_closed_not_reused(monkeypatch):
    pool = IdleConnections(max_size=2)
    stale = FakeConnection()
    pool.give(stale)
    monkeypatch.setattr("distributed_system.backends.mysql.base.MAX_IDLE_SECONDS", 0)
    assert pool.take() is None
    assert stale.closed
