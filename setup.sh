#!/bin/sh
# Sets up a fresh clone: .venv, the packages in requirements.txt, all four databases migrated,
# and the admin's static files collected. Safe to run again: it only does what is missing.
set -e
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "setup.sh: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1)); set PYTHON=..." >&2
        exit 1
    }
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
for database in default users_db products_db orders_db; do
    .venv/bin/python manage.py migrate --database="$database" --verbosity 0
done
.venv/bin/python manage.py collectstatic --noinput --verbosity 0
echo "Ready. Run: .venv/bin/python manage.py insert_data"
