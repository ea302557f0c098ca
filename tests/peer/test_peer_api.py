"""The Python peer's public surface is what the docs promise, and nothing more."""

from __future__ import annotations

import inspect

import nbchat.peer
from nbchat.peer import ChatPeer, NbChatError


def test_public_names() -> None:
    assert set(nbchat.peer.__all__) == {
        "AuthenticationFailed",
        "ChatPeer",
        "NbChatError",
        "NotAnNbchatServer",
        "PresenceEvent",
        "Rejection",
        "ServerUnreachable",
        "SignalingError",
        "TurnError",
        "TurnRefused",
        "TurnUnreachable",
    }
    for name in nbchat.peer.__all__:
        assert getattr(nbchat.peer, name).__module__.startswith("nbchat.peer.")


def test_errors_share_one_base() -> None:
    for name in [
        "AuthenticationFailed",
        "NotAnNbchatServer",
        "ServerUnreachable",
        "SignalingError",
        "TurnError",
        "TurnRefused",
        "TurnUnreachable",
    ]:
        assert issubclass(getattr(nbchat.peer, name), NbChatError)


def test_chat_peer_surface() -> None:
    public = {n for n, _ in inspect.getmembers(ChatPeer) if not n.startswith("_")}
    assert public == {
        "conversation",
        "delete",
        "delivered_to",
        "files",
        "edit",
        "export",
        "history",
        "import_history",
        "id",
        "join",
        "leave",
        "mentions",
        "mentions_me",
        "message",
        "messages",
        "off_record",
        "off_the_record",
        "is_off_the_record",
        "peers",
        "presence",
        "protected",
        "react",
        "reply",
        "send",
        "send_file",
        "stop_sharing",
        "set_typing",
        "typing",
        "user",
        "users",
        "wait_delivered",
        "wait_file",
        "wait_for_peers",
    }
    assert list(inspect.signature(ChatPeer).parameters) == [
        "server_url",
        "room",
        "token",
        "connect_timeout",
        "identity_timeout",
        "rate_limit",
        "relay_only",
        "passphrase",
        "max_rich_bytes",
        "receive_files",
        "max_file_bytes",
        "mesh_size",
        "max_links",
        "loopback_candidate",
    ]


def test_the_top_level_package_exports_exactly_its_public_surface() -> None:
    import subprocess
    import sys

    assert set(nbchat.__all__) == {
        "Chat",
        "__version__",
        "load_ipython_extension",
        "unload_ipython_extension",
    }
    for name in nbchat.__all__:
        assert getattr(nbchat, name) is not None
    # Importing nbchat (as the server extension and the Python peer do) does not pull in
    # the kernel-side widget stack; asking for Chat does.
    code = (
        "import sys, nbchat; assert 'anywidget' not in sys.modules; "
        "nbchat.Chat; assert 'anywidget' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
