"""A real JupyterHub in a subprocess: configurable-http-proxy from npm, the simple local
spawner (one real ``jupyterhub-singleuser`` per user), dummy logins, and the admin's
nbchat configuration read verbatim from docs/deploy.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.lab import REPO, free_port, stop_process
from tests.support.widgets import code_notebook

VENV_BIN = Path(sys.executable).parent
PROXY = REPO / "node_modules" / ".bin" / "configurable-http-proxy"


def deploy_snippet(service_port: int) -> str:
    """The ``jupyterhub_config.py`` lines of docs/deploy.md, with the test's port."""
    text = (REPO / "docs" / "deploy.md").read_text()
    match = re.search(
        r"<!-- hub-config -->\s*```python\n(.*?)```\s*<!-- /hub-config -->", text, re.S
    )
    assert match, "docs/deploy.md lost its hub-config block"
    return match.group(1).replace("127.0.0.1:8765", f"127.0.0.1:{service_port}")


@dataclass
class JupyterHub:
    root: Path
    users: list[str]
    groups: dict[str, list[str]]
    port: int = field(default_factory=free_port)
    service_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.root / "hub.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def config(self) -> str:
        lab_settings = json.dumps({"fetchNews": "false", "checkForUpdates": False})
        tracker = json.dumps({"autoStartDefaultKernel": True})
        test_part = f"""
import os
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {free_port()}
c.JupyterHub.db_url = "sqlite:///{self.root / "hub.sqlite"}"
c.JupyterHub.cookie_secret_file = "{self.root / "cookie_secret"}"
c.JupyterHub.pid_file = "{self.root / "hub.pid"}"
c.ConfigurableHTTPProxy.command = ["{PROXY}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.pid_file = "{self.root / "proxy.pid"}"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {set(self.users)!r}
c.JupyterHub.load_groups = {{g: {{"users": u}} for g, u in {self.groups!r}.items()}}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{self.root / "home"}/{{username}}"
c.Spawner.cmd = ["{VENV_BIN / "jupyterhub-singleuser"}"]
c.Spawner.args = ["--allow-root", "--LabApp.expose_app_in_browser=True",
                  "--ServerApp.log_level=INFO"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.environment = {{
    "PYTHONPATH": "{REPO}" + os.pathsep + os.environ.get("PYTHONPATH", ""),
}}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.services = []
c.JupyterHub.load_roles = []
"""
        # The service is started by the hub from the venv (the test's `nbchat-signaling`).
        snippet = deploy_snippet(self.service_port).replace(
            '"nbchat-signaling"', f'"{VENV_BIN / "nbchat-signaling"}"'
        )
        return (
            test_part
            + "\n# ---- docs/deploy.md ----\n"
            + snippet
            + f"""
# ---- lab settings per user home ----
for _user in {self.users!r}:
    _home = "{self.root / "home"}/" + _user
    _s = _home + "/.jupyter/lab/user-settings/@jupyterlab/apputils-extension"
    os.makedirs(_s, exist_ok=True)
    open(_s + "/notification.jupyterlab-settings", "w").write({lab_settings!r})
    _t = _home + "/.jupyter/lab/user-settings/@jupyterlab/notebook-extension"
    os.makedirs(_t, exist_ok=True)
    open(_t + "/tracker.jupyterlab-settings", "w").write({tracker!r})
"""
        )

    def put_notebook(self, user: str, name: str, *sources: str) -> str:
        home = self.home(user)
        home.mkdir(parents=True, exist_ok=True)
        (home / name).write_text(json.dumps(code_notebook(*sources)))
        return name

    def start(self, timeout: float = 60.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "jupyterhub_config.py").write_text(self.config())
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(self.root / "jupyterhub_config.py")],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited early:\n{self.log()[-5000:]}")
            if self.health(self.url + "hub/health") and self.health(
                f"http://127.0.0.1:{self.service_port}/services/nbchat/health"
            ):
                return
            time.sleep(0.2)  # polling a starting process; no event to wait on
        raise TimeoutError(f"jupyterhub not ready in {timeout}s:\n{self.log()[-5000:]}")

    @staticmethod
    def health(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def api_token(self, user: str) -> str:
        """A hub API token for ``user`` (as a user makes one on the hub's token page)."""
        out = subprocess.run(
            [
                str(VENV_BIN / "jupyterhub"),
                "token",
                user,
                "-f",
                str(self.root / "jupyterhub_config.py"),
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def service_pid(self) -> int | None:
        out = subprocess.run(
            ["pgrep", "-f", f"{VENV_BIN / 'nbchat-signaling'}"], capture_output=True, text=True
        )
        pids = [int(p) for p in out.stdout.split()]
        return pids[0] if pids else None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 30)  # the hub stops its proxy, service and servers
        self.proc = None

    def copy_log(self, to: Path) -> None:
        to.mkdir(exist_ok=True)
        shutil.copy(self.log_path, to / "hub.log")


def hub_login(page: Any, hub: JupyterHub, user: str) -> None:
    """Log in through the hub's form (DummyAuthenticator takes any password)."""
    page.goto(hub.url + "hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "any")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(re.compile(r".*/user/" + user + r"/lab.*"), timeout=90_000)
