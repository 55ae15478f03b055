"""Real PostgreSQL and MariaDB servers for tests/test_servers*.py, and the project run against them.

A server is chosen by an environment variable holding an administrator's URL
(DS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres,
DS_TEST_MARIADB_URL=mysql://root@127.0.0.1:3306/mysql); where it is unset, the tests that need
it are skipped with the reason. Each test creates its own databases (ds_test_<random>_<role>)
and drops them afterwards.

The project runs in subprocesses (`python manage.py ...`): settings, and so DATABASES, are read
when a process starts, and the test process itself stays on its SQLite test databases.
"""

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
SERVER_VARIABLES = {"postgresql": "DS_TEST_POSTGRES_URL", "mysql": "DS_TEST_MARIADB_URL"}
SERVER_NAMES = {"postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL"}
URL_VARIABLES = {
    "users_db": "USERS_DATABASE_URL",
    "products_db": "PRODUCTS_DATABASE_URL",
    "orders_db": "ORDERS_DATABASE_URL",
    "default": "DEFAULT_DATABASE_URL",
}
TABLES = {
    "users_db": "data_insertion_user",
    "products_db": "data_insertion_product",
    "orders_db": "data_insertion_order",
}
COMMAND_TIMEOUT_SECONDS = 600


@dataclass
class Server:
    """A database server reached with an administrator's URL; tracks the databases it made."""

    vendor: str  # "postgresql" or "mysql", as Django's connection.vendor says
    url: str
    created: list[str] = field(default_factory=list)

    def database_url(self, name: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}", query=""))

    def connect(self, database: str | None = None):
        """A DB-API connection in autocommit mode, to `database` or the administrator's one."""
        parts = urlsplit(self.url)
        name = database or parts.path.lstrip("/") or None
        if self.vendor == "postgresql":
            import psycopg

            return psycopg.connect(self.database_url(name or "postgres"), autocommit=True)
        import pymysql

        return pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            database=name,
            autocommit=True,
        )

    def execute(self, sql: str, params=(), database: str | None = None) -> list[tuple]:
        connection = self.connect(database)
        try:
            cursor = connection.cursor()
            cursor.execute(sql, params or None)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()

    def create_database(self, role: str) -> str:
        name = f"ds_test_{uuid.uuid4().hex[:10]}_{role}"
        charset = " CHARACTER SET utf8mb4" if self.vendor == "mysql" else ""
        self.execute(f"CREATE DATABASE {name}{charset}")
        self.created.append(name)
        return name

    def drop_databases(self) -> None:
        force = " WITH (FORCE)" if self.vendor == "postgresql" else ""
        while self.created:
            self.execute(f"DROP DATABASE IF EXISTS {self.created.pop()}{force}")

    def tables(self, database: str) -> set[str]:
        if self.vendor == "postgresql":
            sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        else:
            sql = "SHOW TABLES"
        return {table for (table,) in self.execute(sql, database=database)}

    def count(self, database: str, table: str) -> int:
        return self.execute(f"SELECT COUNT(*) FROM {table}", database=database)[0][0]

    def connections_per_database(self) -> dict[str, int]:
        """Open client connections to each database of this server, right now."""
        if self.vendor == "postgresql":
            sql = (
                "SELECT datname, COUNT(*) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND datname IS NOT NULL GROUP BY datname"
            )
        else:
            sql = (
                "SELECT db, COUNT(*) FROM information_schema.processlist "
                "WHERE db IS NOT NULL GROUP BY db"
            )
        return {name: count for name, count in self.execute(sql)}


def server(vendor: str) -> Server:
    """The server the environment names for `vendor`, or skip the test saying how to name one."""
    variable = SERVER_VARIABLES[vendor]
    url = os.environ.get(variable, "").strip()
    if not url:
        pytest.skip(f"{variable} is not set: no {SERVER_NAMES[vendor]} server to test against")
    return Server(vendor, url)


@dataclass
class Deployment:
    """Where each alias lives for a run of the project: a server database, or SQLite in data_dir."""

    data_dir: Path
    databases: dict[str, tuple[Server, str]] = field(default_factory=dict)
    # a sharded model's databases, in the order of its URL list (users_db_0, users_db_1, ...)
    shards: dict[str, tuple[Server, list[str]]] = field(default_factory=dict)
    extra_environment: dict[str, str] = field(default_factory=dict)

    def place(self, alias: str, on: Server) -> str:
        """Put `alias` on a new database of `on`; return the database's name."""
        name = on.create_database(alias.removesuffix("_db"))
        self.databases[alias] = (on, name)
        return name

    def place_shards(self, alias: str, on: Server, count: int) -> list[str]:
        """Put `alias`'s shards on `count` new databases of `on`, listed in its URL variable
        (DS_SHARDS, or the model's own variable, says how many of them are used at first)."""
        base = alias.removesuffix("_db")
        names = [on.create_database(f"{base}_{index}") for index in range(count)]
        self.shards[alias] = (on, names)
        return names

    def environment(self) -> dict[str, str]:
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in URL_VARIABLES.values() and key != "DS_MAX_CONNECTIONS_PER_DATABASE"
        }
        environment.update(
            DJANGO_SETTINGS_MODULE="distributed_system.settings",
            DS_DATA_DIR=str(self.data_dir),
            PYTHONUNBUFFERED="1",
        )
        for alias, (on, name) in self.databases.items():
            environment[URL_VARIABLES[alias]] = on.database_url(name)
        for alias, (on, names) in self.shards.items():
            environment[URL_VARIABLES[alias]] = ",".join(on.database_url(n) for n in names)
        environment.update(self.extra_environment)
        return environment

    def manage(self, *arguments: str, timeout: float = COMMAND_TIMEOUT_SECONDS):
        """Run `python manage.py ARGUMENTS` with this deployment; the finished process."""
        return subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=PROJECT_DIR,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *arguments: str) -> subprocess.Popen:
        """Start `python manage.py ARGUMENTS` without waiting for it."""
        return subprocess.Popen(
            [sys.executable, "manage.py", *arguments],
            cwd=PROJECT_DIR,
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def python(self, code: str) -> dict:
        """Run `code` in `manage.py shell`; it prints one JSON object as its last line."""
        finished = self.manage("shell", "--no-imports", "--verbosity", "0", "--command", code)
        assert finished.returncode == 0, finished.stderr
        return json.loads(finished.stdout.strip().splitlines()[-1])

    def rows(self, alias: str) -> int:
        on, name = self.databases[alias]
        return on.count(name, TABLES[alias])

    def shard_ids(self, alias: str) -> list[list[int]]:
        """The ids stored in each of `alias`'s shard databases, in the order of its URL list."""
        on, names = self.shards[alias]
        return [
            [row_id for (row_id,) in on.execute(f"SELECT id FROM {TABLES[alias]}", database=name)]
            for name in names
        ]
