"""IPython extension: ``%load_ext nbchat`` registers ``%chat [ROOM]``."""

from __future__ import annotations

import ast
import getpass
import re
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from .widget import Chat, default_room, frontend_session

__all__ = ["ChatMagics", "load_ipython_extension", "unload_ipython_extension"]

#: ``--relay`` as a word of the magic's line; the rest, spaces kept, is the room name.
RELAY_FLAG = re.compile(r"(?:^|\s)--relay(?=\s|$)")


_PASSPHRASE_FLAG = re.compile(r"(?:^|\s)--passphrase(?=\s|$)")


@magics_class
class ChatMagics(Magics):
    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        # (room, frontend session) -> the Chat that frontend displayed last: re-running
        # %chat replaces it, while another user sharing the kernel keeps theirs.
        self._chats: dict[tuple[str, str], Chat] = {}

    @line_magic
    def chat(self, line: str) -> Chat:
        """Show the chat for ROOM (default: this notebook's room) and return the widget.

        Usage: ``%chat [ROOM] [--relay] [--passphrase]``, or ``chat = %chat`` to keep a
        handle for ``chat.send(...)``, ``chat.messages`` and ``chat.on_message(...)``.
        ``--relay`` uses only TURN-relayed connections. With ``--passphrase`` the room
        passphrase is asked for without echo (never in the notebook): only peers with the
        same one can connect.
        """
        text = line.strip().rstrip(";")
        text, protected = _PASSPHRASE_FLAG.subn(" ", text)
        room = RELAY_FLAG.sub(" ", text).strip()
        relay_only = room != text.strip()
        room = room or default_room()
        passphrase = None
        if protected:
            passphrase = getpass.getpass(f"Passphrase for room {room!r}: ")
            if not passphrase:
                raise ValueError("an empty passphrase protects nothing")
        key = (room, frontend_session(self.shell))
        previous = self._chats.pop(key, None)
        if previous is not None:
            previous.close()
        chat = Chat(room=room, relay_only=relay_only, passphrase=passphrase)
        self._chats[key] = chat
        # A bare `%chat` ending the cell is displayed by IPython as the cell's result;
        # displaying it here too would show the chat twice.
        if not self._is_cell_result():
            display(chat)  # type: ignore[no-untyped-call]
        return chat

    def _is_cell_result(self) -> bool:
        """Whether this %chat is the running cell's last expression (so IPython shows it)."""
        history = getattr(self.shell, "history_manager", None)
        parsed = getattr(history, "input_hist_parsed", None)
        if not parsed:
            return False
        try:
            body = ast.parse(parsed[-1]).body
        except SyntaxError:
            return False
        last = body[-1] if body else None
        if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
            return False
        call = last.value
        return (
            isinstance(call.func, ast.Attribute)
            and call.func.attr == "run_line_magic"
            and bool(call.args)
            and isinstance(call.args[0], ast.Constant)
            and call.args[0].value == "chat"
        )

    def close_all(self) -> None:
        for chat in self._chats.values():
            chat.close()
        self._chats.clear()


def load_ipython_extension(ipython: Any) -> None:
    magics = ChatMagics(ipython)
    ipython.register_magics(magics)
    print("nbchat loaded: run `chat = %chat` to chat with everyone who has this notebook open.")


def unload_ipython_extension(ipython: Any) -> None:
    registered = ipython.magics_manager.registry.get("ChatMagics")
    if isinstance(registered, ChatMagics):
        registered.close_all()
    ipython.magics_manager.magics["line"].pop("chat", None)
    ipython.magics_manager.registry.pop("ChatMagics", None)
