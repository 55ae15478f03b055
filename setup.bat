@echo off
rem Sets up a fresh clone on Windows: .venv, the packages in requirements.txt, all four
rem databases migrated, and the admin's static files collected. Safe to run again: it only
rem does what is missing.
setlocal
cd /d "%~dp0"

if not exist .venv\Scripts\python.exe (
    py -3 -c "import sys; sys.exit(sys.version_info < (3, 11))" || (
        echo setup.bat: Python 3.11 or newer is needed ^(py -3^). 1>&2
        exit /b 1
    )
    py -3 -m venv .venv || exit /b 1
)
.venv\Scripts\python -m pip install --quiet --disable-pip-version-check -r requirements.txt || exit /b 1
for %%d in (default users_db products_db orders_db) do (
    .venv\Scripts\python manage.py migrate --database=%%d --verbosity 0 || exit /b 1
)
.venv\Scripts\python manage.py collectstatic --noinput --verbosity 0 || exit /b 1
echo Ready. Run: .venv\Scripts\python manage.py insert_data
