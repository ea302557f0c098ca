"""A real JupyterLab server in a subprocess, isolated from the machine's Jupyter config."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: Where ./dev installs jupyter-collaboration, beside the venv rather than into it (in the
#: venv it would make every test's Lab collaborative).
COLLAB = REPO / ".collab"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """A running ``jupyter lab``: ``url`` ends with the base URL's slash."""

    root: Path
    port: int
    token: str
    base_url: str
    log_path: Path
    nbchat_config: dict[str, Any] = field(default_factory=dict)
    #: Extra environment for the server (e.g. NBCHAT_TURN_SECRET).
    env: dict[str, str] = field(default_factory=dict)
    #: Extra command-line options for ``jupyter lab``.
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    def notebook_url(self, path: str, app: str = "lab") -> str:
        if app == "lab":
            return f"{self.url}lab/tree/{path}?token={self.token}&reset"
        return f"{self.url}notebooks/{path}?token={self.token}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self, timeout: float = 60.0) -> None:
        home = self.root / "home"
        env = {
            **os.environ,
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "IPYTHONDIR": str(home / "ipython"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONUNBUFFERED": "1",
            # Absolute: kernels start in the notebook's folder, where a relative
            # PYTHONPATH=src would miss this checkout (and load the installed nbchat).
            "PYTHONPATH": os.pathsep.join(
                [
                    str(REPO),
                    *(
                        os.path.abspath(p)
                        for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                        if p
                    ),
                ]
            ),
            **self.env,
        }
        shutil.rmtree(home / "workspaces", ignore_errors=True)
        settings = home / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        # Start the default kernel for a notebook without asking (no "Select Kernel" dialog).
        tracker = home / "settings" / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True, exist_ok=True)
        (tracker / "tracker.jupyterlab-settings").write_text(
            json.dumps({"autoStartDefaultKernel": True})
        )
        args = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={self.port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            "--ServerApp.identity_provider_class=tests.support.identity.UniqueAnonymousNames",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.base_url={self.base_url}",
            f"--ServerApp.root_dir={self.root / 'work'}",
            "--ServerApp.allow_unauthenticated_access=False",
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",
            "--ServerApp.log_level=INFO",
            "--NbChatApp.log_level=DEBUG",
        ]
        for k, v in self.nbchat_config.items():
            if isinstance(v, list) and v and all(isinstance(item, str) for item in v):
                # A list of strings on traitlets' command line: the option once per item.
                args += [f"--NbChatApp.{k}={item}" for item in v]
            else:
                args.append(f"--NbChatApp.{k}={json.dumps(v)}")
        args += self.args
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        status = f"{self.url}api/status?token={self.token}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(status, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)  # polling a starting process; no event to wait on
        raise TimeoutError(f"jupyter lab not ready in {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 15)
        self.proc = None


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def collaborative_env() -> dict[str, str]:
    """Environment for a Lab that loads jupyter-collaboration from :data:`COLLAB` (installed
    there with ``pip install --target``): its Python packages, its server extension's
    config (etc/jupyter) and its lab extensions (share/jupyter), for that Lab only."""
    paths = [str(COLLAB), str(REPO), os.environ.get("PYTHONPATH")]
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, paths)),
        "JUPYTER_PATH": str(COLLAB / "share" / "jupyter"),
        "JUPYTER_CONFIG_PATH": str(COLLAB / "etc" / "jupyter"),
    }


def make_lab(
    tmp: Path, nbchat_config: dict[str, Any] | None = None, base_url: str = "/nbchat test/"
) -> Lab:
    """Prepare (not start) a Lab whose root holds a copy of the repo's notebooks."""
    work = tmp / "work"
    work.mkdir(parents=True, exist_ok=True)
    src = REPO / "notebooks"
    if src.is_dir():
        shutil.copytree(src, work / "notebooks", dirs_exist_ok=True)
    from urllib.parse import quote

    return Lab(
        root=tmp,
        port=free_port(),
        token=secrets.token_hex(16),
        base_url=quote(base_url),
        log_path=tmp / "lab.log",
        nbchat_config=nbchat_config or {},
    )
