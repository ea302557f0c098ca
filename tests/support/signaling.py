"""``nbchat-signaling`` as a real process for tests, and a tiny HTTP client for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.lab import free_port

TOKEN = "s3cret-token"


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int
    base: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.base}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_service(
    tmp: Path,
    *args: str,
    base: str = "/chat/",
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> Service:
    port = free_port()
    log_path = tmp / f"signaling-{port}.log"
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "NBCHAT_"))
    }
    environment.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbchat.signaling", f"--port={port}", f"--base-url={base}", *args],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=environment,
        cwd=tmp,
    )
    service = Service(proc, port, base, log_path)
    deadline = time.monotonic() + 20
    while wait and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nbchat-signaling exited early:\n{service.log()}")
        if get(service.url + "health")[0] == 200:
            return service
        time.sleep(0.05)  # polling a starting process; no event to wait on
    if wait:
        raise TimeoutError(service.log())
    return service


def get(
    url: str, token: str | None = None, cookie: str | None = None
) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)
    except (urllib.error.URLError, ConnectionError):
        return 0, "", {}
