"""Test settings: the project's settings with every database file in a fresh temporary directory.

Tests never touch a user's users.db, products.db or orders.db, nor write into the repository.
Test databases are files (not in-memory shared cache, whose table locks ignore the busy timeout),
so worker threads can write to them concurrently.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

from data_insertion.topology.databases import configured_databases
from data_insertion.topology.shards import configured_shard_counts
from distributed_system.settings import *  # noqa: F403
from distributed_system.settings import MAX_CONNECTIONS_PER_DATABASE, SQLITE_TIMEOUT_SECONDS

DATA_DIR = Path(tempfile.mkdtemp(prefix="distributed-system-tests-"))
atexit.register(shutil.rmtree, DATA_DIR, ignore_errors=True)

# SQLite files whatever *_DATABASE_URL says (an empty environment): the server tests start
# their own processes.
DATABASES = configured_databases({}, DATA_DIR, SQLITE_TIMEOUT_SECONDS, MAX_CONNECTIONS_PER_DATABASE)
SHARD_COUNTS = configured_shard_counts({})

# WhiteNoise reads STATIC_ROOT when a test first makes a request: never the repository's.
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir()

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Runs started through the API or the dashboard run in a thread of the test process: a
# background process would not know these temporary databases.
RUN_EXECUTOR = "thread"
# The dashboard's own static files straight from the app folders, with no collectstatic.
WHITENOISE_USE_FINDERS = True
