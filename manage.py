#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "distributed_system.settings")
    try:
        from django.core.exceptions import ImproperlyConfigured
        from django.core.management import execute_from_command_line
    except ImportError:
        sys.exit(
            f"Django is not installed for {sys.executable}: run ./setup.sh (setup.bat on "
            "Windows), then use .venv/bin/python, or activate the venv first "
            "(. .venv/bin/activate; on Windows .venv\\Scripts\\activate)."
        )

    # A name the terminal's encoding lacks is shown escaped rather than stopping the output.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")
    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A bad environment variable (DS_SQLITE_TIMEOUT=abc, USERS_DATABASE_URL=ftp://...)
        # is one line saying which, not a traceback.
        sys.exit(f"Configuration error: {error}")
    except BrokenPipeError:
        # The reader went away (`... | head`): say so on stderr, which is still open, and stop.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(
            "Output stopped: standard output was closed (the reader went away, as with "
            "`| head`). Records already taken were committed or rolled back; --json or "
            "--details keeps a whole run's results."
        )


if __name__ == "__main__":
    main()
