"""WSGI entry point (the admin is the only web surface)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "distributed_system.settings")

application = get_wsgi_application()
