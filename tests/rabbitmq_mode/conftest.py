"""The tests against a real RabbitMQ (issue 15, notifications): everything in this
folder is marked `rabbitmq`, which the normal runs deselect (pyproject's addopts) and
`make test-rabbitmq` selects, so a broker starts once per `make test`, not on each
database pass.

`rabbitmq` is a throwaway broker for the session (tests/rabbitmq.py). Where Debian's
rabbitmq-server is missing, every test here skips with one line saying so -- an error
with REQUIRE_RABBITMQ=1, as in CI.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rabbitmq import RabbitMQ, missing, running_rabbitmq
from tests.suites import folder_hooks

HERE = Path(__file__).resolve().parent

pytest_collection_modifyitems, pytest_runtest_setup = folder_hooks(
    HERE, "rabbitmq", missing, "REQUIRE_RABBITMQ"
)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQ]:
    with running_rabbitmq() as broker:
        yield broker
