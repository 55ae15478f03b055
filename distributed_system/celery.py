"""The Celery app for runs spread over workers (--celery): `celery -A distributed_system worker`.

Its settings are Django's CELERY_* (settings.py, from DS_CELERY_BROKER_URL and DS_CELERY_QUEUE);
its one task, a slice of a run, is data_insertion/tasks.py. Nothing else imports Celery: a run
in one process or over local processes never loads it.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "distributed_system.settings")

app = Celery("distributed_system")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
