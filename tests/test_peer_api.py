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
        "delivered_to",
        "history",
        "id",
        "join",
        "leave",
        "messages",
        "peers",
        "presence",
        "protected",
        "send",
        "user",
        "users",
        "wait_delivered",
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
    ]
