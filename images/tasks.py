"""Background work, as Django Tasks (django-tasks; `manage.py db_worker` runs them
from the queue in the database, on as many nodes as share it). Each task is a thin
call into the services, where the work and its every outcome live."""

from django_tasks import task

from images import services


@task()
def run_import(task_id: str) -> None:
    """An interoperable import (images/services/import_worker.py)."""
    services.import_run(task_id)
