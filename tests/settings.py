"""Test settings: the project's settings with every database file in a fresh temporary directory.

Tests never touch a user's users.db, products.db or orders.db, nor write into the repository.
Test databases are files (not in-memory shared cache, whose table locks ignore the busy timeout),
so worker threads can write to them concurrently.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

from distributed_system.settings import *  # noqa: F403
from distributed_system.settings import DATABASES, sqlite_database

DATA_DIR = Path(tempfile.mkdtemp(prefix="distributed-system-tests-"))
atexit.register(shutil.rmtree, DATA_DIR, ignore_errors=True)

# SQLite files whatever *_DATABASE_URL says: the server tests start their own processes.
for _alias, _filename in {
    "default": "default.db",
    "users_db": "users.db",
    "products_db": "products.db",
    "orders_db": "orders.db",
}.items():
    DATABASES[_alias] = sqlite_database(_filename, DATA_DIR)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
