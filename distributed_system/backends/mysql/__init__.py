"""Django's MySQL/MariaDB backend with idle connections kept for reuse (see base.py).

Settings name it as the ENGINE of every mysql:// or mariadb:// URL. Its driver is mysqlclient
if that is installed, else PyMySQL standing in for it: mysqlclient has no Linux wheel, and
building it needs the MariaDB/MySQL client headers (libmariadb-dev, pkg-config), which a fresh
machine lacks. PyMySQL is pure Python, and Django's MySQL backend runs on it.
"""

try:
    import MySQLdb  # noqa: F401
except ImportError:
    import pymysql

    pymysql.install_as_MySQLdb()
