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

for _alias, _database in DATABASES.items():
    if _database["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES[_alias] = sqlite_database(Path(_database["NAME"]).name, DATA_DIR)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
