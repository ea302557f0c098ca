"""nbchat: peer-to-peer chat beside your analysis in Jupyter."""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .magics import load_ipython_extension, unload_ipython_extension
from .widget import Chat

__all__ = ["Chat", "__version__", "load_ipython_extension", "unload_ipython_extension"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    # Imported lazily: a kernel importing nbchat never needs the server half.
    from .server.app import NbChatApp

    return [{"module": "nbchat.server.app", "app": NbChatApp}]
