"""Start the application in a child process against the benchmark database.

The child reads the same PostgreSQL database and Redis broker as the
benchmark that starts it, with DEBUG off (DEBUG would record every query
of every request) and a secret key of its own.
"""

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import requests
from django.conf import settings
from django.db import connection

# Five gunicorn workers on a busy two-core machine took over a minute to
# import Django and serve their first request.
SERVER_START_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(**overrides: str) -> dict[str, str]:
    """Return the environment of a child serving this process's database."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "postgres")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    return {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'])}"
        ),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


def start_server(
    command: list[str], log_path: Path, **environment: str
) -> subprocess.Popen[bytes]:
    """Start command in the project folder with the server environment."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=server_environment(**environment),
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
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    raise RuntimeError(
        f"server did not respond within {SERVER_START_SECONDS} s:\n{log.read_text()}"
    )


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
