"""Django's PostgreSQL backend, whose pool (OPTIONS["pool"]) reports why a server refuses.

psycopg's pool retries a connection that fails, quietly but for a log line per try, until the
caller's wait runs out (30 s), and then says only "couldn't get a connection". Before a pool
is first used, one direct connection is made: a wrong database name, password or port fails at
once, with the server's own reason.
"""

import threading

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    _reachable: set[tuple] = set()
    _reachable_guard = threading.Lock()

    def get_new_connection(self, conn_params):
        if self.pool is not None:
            settings = self.settings_dict
            key = (self.alias, settings["HOST"], settings["PORT"], settings["NAME"])
            if key not in self._reachable:
                self.Database.connect(**conn_params).close()
                with self._reachable_guard:
                    self._reachable.add(key)
        return super().get_new_connection(conn_params)
