"""Sending notifications with oslo.messaging, off the request's thread.

A request only puts an event on this process's bounded queue; one daemon thread
sends them with oslo.messaging's Notifier, the library Glance uses, so the operator's
usual driver, transport_url and topics apply. A bus that is down costs a request
nothing: the sender's retries are bounded (IMAGES_NOTIFICATION_RETRY), an event it
cannot deliver is logged and counted, and when the queue is full new events are
dropped and counted instead of waiting. Delivery is at most once.

The bus is rebuilt when the process forks (gunicorn workers start after the master
imported the app: a thread and an AMQP connection do not survive fork) and when its
settings change (the tests' override_settings).
"""

import atexit
import logging
import os
import queue
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

# oslo.messaging's own exchange default is "openstack"; Glance sets "glance", and
# Ceilometer listens for image events on the "glance" exchange.
CONTROL_EXCHANGE = "glance"
# How long a process that is exiting waits for its queued events to go.
EXIT_FLUSH_SECONDS = 10.0


def _oslo_messaging():
    """oslo.messaging, imported on the first event a driver other than noop sends.

    Its server module pulls in oslo.service, whose default backend (and futurist)
    import eventlet, which warns on import; we use threads only, so the threading
    backend is chosen and those import-time warnings are silenced, here alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from oslo_service import backend

        if backend.get_backend_type() is None:
            backend.init_backend(backend.BackendType.THREADING)
        import oslo_messaging
    return oslo_messaging


@dataclass
class Counts:
    sent: int = 0
    failed: int = 0  # the driver could not deliver it (logged by oslo.messaging and by us)
    dropped: int = 0  # the queue was full: never handed to the driver

    @property
    def lost(self) -> int:
        return self.failed + self.dropped


@dataclass(frozen=True)
class Config:
    drivers: tuple[str, ...]
    transport_url: str
    topics: tuple[str, ...]
    publisher_id: str
    retry: int
    queue_size: int

    @classmethod
    def current(cls) -> "Config":
        return cls(
            drivers=tuple(settings.IMAGES_NOTIFICATION_DRIVER),
            transport_url=settings.IMAGES_NOTIFICATION_TRANSPORT_URL,
            topics=tuple(settings.IMAGES_NOTIFICATION_TOPICS),
            publisher_id=settings.IMAGES_NOTIFICATION_PUBLISHER_ID,
            retry=settings.IMAGES_NOTIFICATION_RETRY,
            queue_size=settings.IMAGES_NOTIFICATION_QUEUE,
        )

    @property
    def enabled(self) -> bool:
        return any(driver != "noop" for driver in self.drivers)


class _FailureCounter(logging.Handler):
    """oslo.messaging's drivers catch a send failure and log it ("Could not send
    notification ..."); this is how the sender learns that the event it just handed
    over was lost. Only records from the sender's own thread count."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.thread: int | None = None
        self.seen = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.seen += 1


@dataclass
class Bus:
    config: Config
    pid: int = field(default_factory=os.getpid)
    counts: Counts = field(default_factory=Counts)

    def __post_init__(self) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=self.config.queue_size)
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def put(self, event_type: str, payload: dict[str, Any], priority: str) -> None:
        self._start()
        try:
            self.queue.put_nowait((event_type, payload, priority))
        except queue.Full:
            with self.lock:  # request threads count these; the sender counts the rest
                self.counts.dropped += 1
            logger.warning(
                "Notification %s dropped: %d events waiting for the bus already; "
                "%d notifications lost in this process so far",
                event_type,
                self.config.queue_size,
                self.counts.lost,
            )

    def _start(self) -> None:
        if self.thread is not None:
            return
        # Imported here, not in the sender thread: an exiting process flushes its
        # queue from atexit, and oslo.messaging registers atexit hooks as it loads.
        _oslo_messaging()
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="notifications", daemon=True)
                self.thread.start()
                # A command (scrub_images, a cron run) that ends right after its work
                # still sends what it queued: a daemon thread dies with the process.
                atexit.register(self.flush, EXIT_FLUSH_SECONDS)

    def _notifier(self, failures: _FailureCounter):
        messaging = _oslo_messaging()
        from oslo_config import cfg

        # A ConfigOpts of our own: Keystone mode's policy engine has its own too, and
        # oslo.messaging registers its options on whichever object it is given.
        conf = cfg.ConfigOpts()
        conf([], project="glance-registry", default_config_files=[], default_config_dirs=[])
        messaging.set_transport_defaults(CONTROL_EXCHANGE)
        transport = messaging.get_notification_transport(
            conf, url=self.config.transport_url or None
        )
        # Notifier(driver=) takes one name; several (Glance's MultiStrOpt) go by config.
        conf.set_override("driver", list(self.config.drivers), group="oslo_messaging_notifications")
        logging.getLogger("oslo_messaging.notify").addHandler(failures)
        return messaging.Notifier(
            transport,
            publisher_id=self.config.publisher_id,
            topics=list(self.config.topics),
            retry=self.config.retry,
        )

    def _run(self) -> None:
        failures = _FailureCounter()
        failures.thread = threading.get_ident()
        try:
            notifier = self._notifier(failures)
        except Exception:
            logger.exception("The notification bus could not be set up; events are dropped")
            notifier = None
        while True:
            event_type, payload, priority = self.queue.get()
            try:
                self._send(notifier, failures, event_type, payload, priority)
            finally:
                self.queue.task_done()

    def _send(self, notifier, failures, event_type, payload, priority) -> None:
        before = failures.seen
        try:
            if notifier is None:
                raise RuntimeError("no notifier")
            getattr(notifier, priority.lower())({}, event_type, payload)
        except Exception:
            failures.seen += 1
            logger.debug("Sending %s raised", event_type, exc_info=True)
        if failures.seen == before:
            self.counts.sent += 1
            return
        self.counts.failed += 1
        logger.warning(
            "Notification %s not delivered (bus unreachable?); %d notifications lost "
            "in this process so far",
            event_type,
            self.counts.lost,
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was sent or given up; False on timeout."""
        if os.getpid() != self.pid:
            return False  # a forked child's copy: its sender thread did not come along
        done = threading.Event()

        def wait() -> None:
            self.queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)


_bus: Bus | None = None
_bus_lock = threading.Lock()


def bus() -> Bus:
    """This process's bus for the current settings (a new one after fork)."""
    global _bus
    config = Config.current()
    current = _bus
    if current is not None and current.pid == os.getpid() and current.config == config:
        return current
    with _bus_lock:
        if _bus is None or _bus.pid != os.getpid() or _bus.config != config:
            _bus = Bus(config)
        return _bus


def enabled() -> bool:
    return Config.current().enabled


def counts() -> Counts:
    return bus().counts
