"""Request throttling, at the rates the operator configures (IMAGES_API_RATE per
signed-in user, IMAGES_API_ANON_RATE per address for the open versions document;
"0" turns a limit off).

A fixed-window counter rather than DRF's sliding log: DRF keeps one timestamp per
request in the cache and rewrites the whole list on every call, which costs more the
higher the rate, and generous rates are what an image registry needs. Here each
request costs one cache increment, whatever the rate; a client may burst up to twice
the rate across a window boundary.

The rates are read from settings on every request rather than frozen into the class
when DRF imports it. Counters live in Django's cache: with the default local-memory
cache each server process counts its own requests.
"""

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class _FixedWindow:
    setting = ""

    def get_rate(self):
        return getattr(settings, self.setting) or None

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        key = f"{self.key}:{window}"
        if self.cache.add(key, 1, self.duration + 1):
            return True
        try:
            count = self.cache.incr(key)
        except ValueError:  # expired between add() and incr()
            self.cache.set(key, 1, self.duration + 1)
            return True
        self._wait = (window + 1) * self.duration - now
        return count <= self.num_requests

    def wait(self):
        return max(self._wait, 1)


class UserThrottle(_FixedWindow, UserRateThrottle):
    """Per signed-in user (per client address for anonymous callers)."""

    setting = "IMAGES_API_RATE"


class AnonThrottle(_FixedWindow, AnonRateThrottle):
    """Anonymous callers, by address: only the versions document is open to them."""

    setting = "IMAGES_API_ANON_RATE"
