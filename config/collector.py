"""Keep Python's full garbage collections short in a process that serves pages.

CPython's cyclic collector runs a full (generation 2) collection whenever
the objects that survived into that generation grow by a quarter, and each
one traverses every tracked object. A web process keeps a few hundred
thousand of them alive until it exits: Django's modules, classes, URL
patterns and compiled templates. The dashboard's reports allocate
enough per request that a full collection started every few requests, and
it paused every thread of the process, the report threads included, for
about 70 to 260 ms at full size (docs/benchmarks.md).

``gc.freeze()`` moves every object then tracked into a permanent generation
that no collection traverses, so later full collections read only the
objects created since. It is called once, after the first response,
because Django builds its URL patterns and loads its templates on the first
request rather than at start.
"""

import gc
import logging
import threading
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

_frozen = False
_lock = threading.Lock()


def freeze_long_lived_objects() -> None:
    """Collect what is garbage now, then exclude the rest from later collections.

    Runs once per process. The cyclic collector never frees an object frozen
    here, so one that later becomes garbage in a reference cycle stays in
    memory. Reference counting still frees the others.
    """
    global _frozen
    with _lock:
        if _frozen:
            return
        _frozen = True
        started = time.monotonic()
        gc.collect()
        gc.freeze()
    logger.info(
        "Froze %s long-lived objects out of the garbage collector in %.0f ms",
        gc.get_freeze_count(),
        (time.monotonic() - started) * 1000,
    )


class FreezeAfterFirstResponseMiddleware:
    """Freeze the process's long-lived objects once its first response is built."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not _frozen:
            freeze_long_lived_objects()
        return response
