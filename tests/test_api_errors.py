"""The exception handler: what reaches a client when the database is gone."""

import json

import pytest
from django.db import IntegrityError, InterfaceError, OperationalError

from images.api.errors import glance_exception_handler


@pytest.mark.parametrize(
    "exc", [OperationalError("server closed the connection"), InterfaceError("connection closed")]
)
def test_handler_lost_database_is_503_with_glance_body(exc):
    response = glance_exception_handler(exc, {"request": None})
    assert response.status_code == 503
    assert json.loads(response.content) == {
        "message": "The registry's database is unavailable; try again later.",
        "code": "503 Service Unavailable",
        "title": "Service Unavailable",
    }


def test_handler_leaves_other_database_errors_to_django_500():
    assert glance_exception_handler(IntegrityError("bug"), {"request": None}) is None
