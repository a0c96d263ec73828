"""Time the Segment API over HTTP, with several clients at once, for bench.ingest.

Django's threaded development server (manage.py runserver, without
autoreload, started by bench.servers) serves the benchmark database in a
child process, with the event path connected as in production. Client
threads post gzip request bodies with HTTP Basic auth, as Segment's libraries
do, and check that every call was stored. The rate is the events of all
bodies over the wall time from the first request to the last response.
"""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.servers import start_server

REQUEST_TIMEOUT_SECONDS = 60


def start_runserver(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start runserver on 127.0.0.1:port against this process's database."""
    command = [
        sys.executable,
        "manage.py",
        "runserver",
        f"127.0.0.1:{port}",
        "--noreload",
    ]
    return start_server(command, log_path)


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
