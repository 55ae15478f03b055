"""Django's PostgreSQL backend (psycopg 3) with its connection pool (see base.py)."""
