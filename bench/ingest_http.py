"""Time the Segment API over HTTP, with several clients at once, for bench.ingest.

Django's threaded development server (manage.py runserver, without
autoreload and with DEBUG off) serves the benchmark database in a child
process, with the event path connected as in production. Client threads
post gzip request bodies with HTTP Basic auth, as Segment's libraries
do, and check that every call was stored. The rate is the events of all
bodies over the wall time from the first request to the last response.
"""

import os
import secrets
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import requests
from django.conf import settings
from django.db import connection

SERVER_START_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start runserver on 127.0.0.1:port against this process's database."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "postgres")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'])}"
        ),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        # DEBUG would record every query of every request.
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "manage.py",
        "runserver",
        f"127.0.0.1:{port}",
        "--noreload",
    ]
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_until_ready(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited before it was ready:\n{log.read_text()}")
        try:
            requests.get(url + "/healthz", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not respond within {SERVER_START_SECONDS} s")


def time_http(
    url: str, write_key: str, bodies: list[bytes], clients: int, calls: int
) -> float:
    """Return seconds for that many client threads to post the gzip bodies to url."""
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

    shares = [bodies[number::clients] for number in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(send, share) for share in shares]:
            future.result()
    return time.perf_counter() - started
