"""Run a test module again inside a network namespace that has nothing but ``lo``.

The outer test (root only) starts ``unshare -n``, brings ``lo`` up and runs pytest on
the given module there with ``NBCHAT_LOOPBACK_NETNS=1``; the module's inner test checks
``INSIDE`` to know it is the one to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from tests.support.lab import REPO

INSIDE = os.environ.get("NBCHAT_LOOPBACK_NETNS") == "1"

needs_loopback_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
    reason="needs root, unshare and ip to make a loopback-only network namespace",
)


def run_in_loopback_netns(*pytest_args: str, timeout: float) -> None:
    """Run ``pytest pytest_args`` in a fresh loopback-only namespace; exactly one test
    must pass there."""
    script = 'ip link set lo up && exec "$0" -m pytest -q -p no:cacheprovider "$@"'
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", script, sys.executable, *pytest_args],
        cwd=REPO,
        env={**os.environ, "NBCHAT_LOOPBACK_NETNS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
