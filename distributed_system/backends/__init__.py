"""Django's PostgreSQL and MySQL/MariaDB backends, adjusted for many threads sharing a few
connections: settings name these as the ENGINE of every postgres:// and mysql:// URL."""
