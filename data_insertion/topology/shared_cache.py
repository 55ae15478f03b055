"""The shared cache's settings: DS_CACHE_URL as Django's CACHES entry, and where it lives.

It imports nothing of Django at run time (nor redis), so settings can import it.
"""

import hashlib
from collections.abc import Mapping
from urllib.parse import urlsplit

from .placement import MODEL_DATABASES

SHARED_CACHE = "shared"
URL_SCHEMES = ("redis", "rediss", "unix")
# Redis answers in well under a millisecond on a network; a dead one costs at most this.
SOCKET_TIMEOUT_SECONDS = 0.25


def cache_settings(url: str, databases: Mapping[str, dict]) -> dict:
    """The CACHES entry for DS_CACHE_URL: Django's built-in RedisCache, with short timeouts so
    that an outage costs a check little (it then asks the database), and keys prefixed by
    the deployment (key_prefix)."""
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": key_prefix(databases),
        "OPTIONS": {
            "socket_connect_timeout": SOCKET_TIMEOUT_SECONDS,
            "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        },
    }


def cache_location(url: str) -> str:
    """host:port/db of a Redis URL (a socket's path); never its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"


def key_prefix(databases: Mapping[str, dict]) -> str:
    """ "ds:" and a digest of where the users' and products' databases are (DATABASES as
    configured): every process naming the same databases shares entries, and another set of
    databases (another DS_DATA_DIR, other servers) using the same Redis never sees them."""
    cached = (MODEL_DATABASES["user"], MODEL_DATABASES["product"])
    places = sorted(
        f"{alias}={settings.get('HOST', '')}:{settings.get('PORT', '')}/{settings['NAME']}"
        for alias, settings in databases.items()
        if alias.startswith(cached)
    )
    return "ds:" + hashlib.blake2b("\n".join(places).encode(), digest_size=6).hexdigest()
