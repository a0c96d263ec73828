"""Time the Segment API over HTTP, with several clients at once, for bench.ingest.

gunicorn with sync workers (started by bench.servers) serves the
benchmark database in a child process, either as in production or,
through storage_application(), without the triggers app's data_changed
receiver, so that it times what the API path in one process times.
Client threads post gzip request bodies with HTTP Basic auth, as
Segment's libraries do, and check that every call was stored.
The rate is the events of all bodies over the wall time from the first
request to the last response.

Each request still commits before its response is sent. With several requests
in flight, one WAL flush covers every commit that is ready when it runs
(PostgreSQL's documentation of commit_delay describes this), and one
worker's Python work runs while another waits for the database, which a
single process cannot do.
"""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from django.core.handlers.wsgi import WSGIHandler

from bench.servers import start_server

REQUEST_TIMEOUT_SECONDS = 60

# Sync workers, one request each at a time: two per core and one more, so
# that while some wait for the database the others keep the cores busy.
# Each client keeps one request in flight, so every worker has one.
WORKERS = 2 * (os.cpu_count() or 1) + 1
CLIENTS = WORKERS


# The dispatch_uid that the triggers app connects its data_changed receiver with.
RECEIVER_ID = "triggers.on_data_changed"


def storage_application() -> WSGIHandler:
    """Return the project's WSGI application without the event path's receiver.

    gunicorn calls this factory in each worker. The signal is still sent
    once per account, as in bench.ingest's rounds in one process.
    """
    from django.core.wsgi import get_wsgi_application

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    application = get_wsgi_application()

    from customers.signals import data_changed

    data_changed.disconnect(dispatch_uid=RECEIVER_ID)
    return application


def start_gunicorn(
    port: int, log_path: Path, event_path: bool
) -> subprocess.Popen[bytes]:
    """Start gunicorn on 127.0.0.1:port against this process's database.

    Without event_path, the workers serve storage_application().
    """
    application = (
        "config.wsgi:application"
        if event_path
        else "bench.ingest_http:storage_application()"
    )
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
        # Every gunicorn shares one control socket path by default.
        "--no-control-socket",
        application,
    ]
    return start_server(command, log_path)


def time_http(url: str, write_key: str, bodies: list[bytes], calls: int) -> float:
    """Return seconds for CLIENTS client threads to post the gzip bodies to url."""
    endpoint = url + "/segment/v1/batch"

    def send(share: list[bytes]) -> None:
        with requests.Session() as session:
            for body in share:
                response = session.post(
                    endpoint,
                    data=body,
                    auth=(write_key, ""),
                    headers={
                        "Content-Type": "application/json",
                        "Content-Encoding": "gzip",
                    },
                    timeout=REQUEST_TIMEOUT_SECONDS,
                )
                stored = response.json().get("stored")
                if response.status_code != 200 or stored != calls:
                    raise RuntimeError(
                        f"HTTP {response.status_code}, stored {stored} of {calls}: "
                        f"{response.text[:300]}"
                    )

    shares = [bodies[number::CLIENTS] for number in range(CLIENTS)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        for future in [pool.submit(send, share) for share in shares]:
            future.result()
    return time.perf_counter() - started
