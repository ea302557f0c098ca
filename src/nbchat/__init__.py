"""nbchat: peer-to-peer chat beside your analysis in Jupyter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .widget import Chat

__all__ = ["Chat", "__version__", "load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str) -> Any:
    # The widget (anywidget, ipywidgets) loads on first use, so the server extension and
    # the Python peer never import the kernel-side stack.
    if name == "Chat":
        from .widget import Chat

        return Chat
    raise AttributeError(f"module 'nbchat' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbchat``: register the ``%chat`` magic."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import NbChatApp

    return [{"module": "nbchat.server.app", "app": NbChatApp}]
