"""manage.py in a subprocess, as a user runs it: the project's own settings, every file in a
temporary data directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    # pytest-django sets DJANGO_SETTINGS_MODULE to the test settings: a user's run has none.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return {**env, "DS_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **extra}


def manage(
    data_dir: Path, *args: str, timeout: int = 300, env: dict[str, str] | None = None, **popen
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=environment(data_dir, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def start(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=environment(data_dir, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def shell_json(data_dir: Path, code: str, **env: str) -> dict:
    """Run `code` in `manage.py shell` in a process of its own (settings read at start, so
    USERS_SHARDS and the like apply), with the test client's host allowed too; the JSON object
    it prints last."""
    result = manage(
        data_dir,
        "shell",
        "--command",
        code,
        env={"DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1,testserver", **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
