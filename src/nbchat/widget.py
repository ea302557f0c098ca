"""The ``Chat`` widget: the kernel's handle on the chat the browser runs (js/widget.tsx)."""

from __future__ import annotations

import logging
import mimetypes
import os
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, cast

import anywidget
import traitlets

from .assets import STATIC, loader_esm
from .core import comm
from .core.edits import MessageState, Timeline
from .core.export import to_json, to_markdown
from .core.files import FILE_LIMIT_BYTES, clean_file_name
from .core.frames import dumps
from .core.mentions import mentions
from .core.msglog import RECORD_KIND, Message
from .core.rich import RICH_LIMIT_BYTES, size_error
from .mimebundle import rich_message

__all__ = ["Chat", "default_room"]

log = logging.getLogger(__name__)


MessageCallback = Callable[[dict[str, Any]], object]
#: What a cell posts: the comm message for the browser (without ``to``) and its buffers.
Post = tuple[dict[str, Any], list[bytes]]


def frontend_session(shell: Any = None) -> str:
    """The kernel session id of the browser whose request the kernel is handling now (the
    cell being run, or the comm message being handled); "" outside any request."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return ""
        shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    get_parent = getattr(kernel, "get_parent", None)
    parent = get_parent() if callable(get_parent) else None
    session = parent.get("header", {}).get("session") if isinstance(parent, dict) else None
    return session if isinstance(session, str) else ""


def default_room() -> str:
    """The notebook's path if the kernel knows it (JPY_SESSION_NAME), else "default".

    On a JupyterHub whose servers share one chat service (``NBCHAT_SERVICE_URL``), paths
    repeat across users' servers: the room is the path on its owner's server,
    ``~alice/analysis.ipynb``, so alice's and bob's notebooks of one name stay apart
    while people sharing a server meet."""
    path = os.environ.get("JPY_SESSION_NAME") or "default"
    owner = os.environ.get("JUPYTERHUB_USER")
    if owner and os.environ.get("NBCHAT_SERVICE_URL"):
        return f"~{owner}/{path.lstrip('/')}"
    return path


def _first_buffer(buffers: object) -> bytes:
    if not isinstance(buffers, (list, tuple)) or not buffers:
        raise ValueError("no file came with the request")
    first = buffers[0]
    if not isinstance(first, (bytes, bytearray, memoryview)):
        raise ValueError("the file came in an unexpected form")
    return bytes(first)


def _free_path(folder: Path, name: str) -> Path:
    """``folder / name``, or ``name (1)``, ``name (2)``… before its suffix if taken."""
    candidate = folder / name
    stem, suffix = candidate.stem, candidate.suffix
    n = 1
    while candidate.exists():
        candidate = folder / f"{stem} ({n}){suffix}"
        n += 1
    return candidate


class Chat(anywidget.AnyWidget):
    """Peer-to-peer chat for everyone who has this notebook's room open.

    The browser that displays the widget is this notebook's peer: it talks to the other
    peers directly and mirrors the room into ``messages`` and ``users``. When several
    browsers show the same widget (two users on one kernel), the kernel picks one of them,
    the owner, to mirror state and to post what :meth:`send` sends.
    """

    # ~1.7 KB that import the bundle from the Jupyter server (nbchat/assets.py);
    # the bundle itself while developing with anywidget's live reload.
    _esm = STATIC / "widget.js" if os.environ.get("ANYWIDGET_HMR") else loader_esm()
    _css = STATIC / "widget.css"

    room = traitlets.Unicode(help="Room name; everyone with the same room sees the same chat.").tag(
        sync=True
    )
    # Not a synced trait: the owner browser patches it with custom messages, so a long history
    # crosses the comm once instead of on every change, and is never echoed to other browsers.
    messages = traitlets.List(
        traitlets.Dict(),
        help="Messages in room order, each as the chat shows it now: dicts with id, author, "
        "user, time (ms), text (the latest edit), edited (the edit's time or None), deleted, "
        "reactions ([{emoji, users}]), reply_to (the id it answers or None), mentions (the "
        "usernames it calls with @name), and for a rich message its MIME bundle `mime` (e.g. "
        "mime['text/html'] for a shared table, mime['image/png'] as base64), for a shared "
        "file its card `file` (name, size, type, sha256). Messages said while the room was "
        "off the record never appear here (see off_the_record()).",
    )
    max_rich_bytes = traitlets.Int(
        RICH_LIMIT_BYTES,
        help="The largest rich message send() posts (bytes of its MIME bundle as JSON; "
        "receivers accept up to 20 MB).",
    )
    users = traitlets.List(
        traitlets.Dict(), help="Who is in the room: dicts with peer_id and user."
    ).tag(sync=True)
    status = traitlets.Unicode("Waiting for the browser…", help="The chat's status line.").tag(
        sync=True
    )
    peer_id = traitlets.Unicode("", help="The owner browser's peer id in the room.").tag(sync=True)
    relay_only = traitlets.Bool(
        False,
        help="Browsers showing this chat use only TURN-relayed connections, so no peer "
        "learns their addresses (the server must configure a TURN relay).",
    ).tag(sync=True)
    # Identifies this widget to its views across pages; the owner is elected by claims.
    _instance = traitlets.Unicode("").tag(sync=True)
    _owner = traitlets.Unicode("").tag(sync=True)
    has_passphrase = traitlets.Bool(
        False, help="Whether this chat seals its signaling with a room passphrase."
    ).tag(sync=True)

    #: Every live Chat of this kernel, to find the one a browser shows for a room.
    _live: ClassVar[weakref.WeakSet[Chat]] = weakref.WeakSet()

    def __init__(
        self, room: str | None = None, *, passphrase: str | None = None, **kwargs: Any
    ) -> None:
        """``passphrase``: only peers with the same one can connect; it stays in the kernel
        (no trait holds it, so it is never saved in the notebook) and goes to the browsers
        showing this widget in a comm message when they ask."""
        if passphrase is not None and not passphrase:
            raise ValueError("an empty passphrase protects nothing")
        super().__init__(
            room=room or default_room(),
            _instance=uuid.uuid4().hex,
            has_passphrase=passphrase is not None,
            **kwargs,
        )
        self._passphrase = passphrase
        self._outbox: list[Post] = []
        # Browser (kernel session id) -> the peer id its view of this widget has in the room
        # ("" while it has none yet), and what that browser's cells posted meanwhile.
        self._views: dict[str, str] = {}
        self._pending: dict[str, list[Post]] = {}
        Chat._live.add(self)
        self._incoming: list[dict[str, Any]] | None = None
        #: The room's log entries as the owner browser holds them (messages and their
        #: edits, deletes and reactions); ``messages`` is what they show.
        self._entries: list[dict[str, Any]] = []
        self._callbacks: list[MessageCallback] = []
        self._seen: set[str] = {m.get("id", "") for m in self.messages}
        self.on_msg(self._on_custom)
        self.observe(self._on_messages, names="messages")

    def send(self, content: object, buffers: Any = None) -> None:
        """Post ``content`` to the room: Markdown text, or anything Jupyter can display.

        A DataFrame arrives as a table, a matplotlib figure or PIL image as an image, LaTeX
        as LaTeX: the best safe representation of the object's MIME bundle is sent with its
        text/plain as the fallback (see ``nbchat.mimebundle``). One over ``max_rich_bytes``
        raises ``RichMessageTooBig`` saying by how much; nothing is sent then.

        The message is posted by the browser of the person who ran the cell, as that
        person: two people sharing a notebook's kernel each post as themselves. Until that
        browser shows the chat and has joined the room, the message waits in the kernel.
        Raises RuntimeError if the chat is shown only in other people's browsers (run
        ``%chat ROOM`` in yours). Code that runs outside any request (a thread, a timer)
        posts through the browser the kernel elected as the widget's owner.
        """
        if buffers is not None:
            raise TypeError("Chat.send posts a chat message; it takes no binary buffers")
        text, mime = rich_message(content, self.max_rich_bytes)
        if not text.strip():
            if mime is None:
                raise ValueError("refusing to send an empty message")
            text = f"[{next(iter(mime))}]"
        message = comm.send(text, "", mime)
        del message["to"]
        self._dispatch((message, []))

    def reply(self, message_id: str, content: object) -> None:
        """Answer message ``message_id`` (shown quoting it); ``content`` as for :meth:`send`."""
        text, mime = rich_message(content, self.max_rich_bytes)
        self._amend(text, mime, reply_to=self._known(message_id))

    def edit(self, message_id: str, text: str) -> None:
        """Change the text of one of your messages, for everyone (an edit of someone else's
        message is refused by every peer)."""
        self._amend(text, None, kind="edit", target=self._known(message_id))

    def delete(self, message_id: str) -> None:
        """Take back one of your messages, for everyone."""
        self._amend("", None, kind="delete", target=self._known(message_id))

    def react(self, message_id: str, emoji: str, on: bool = True) -> None:
        """Set (or with ``on=False`` take back) your reaction ``emoji`` on a message."""
        self._amend("", None, kind="react", target=self._known(message_id), emoji=emoji, on=on)

    def off_the_record(self, off: bool = True) -> None:
        """Take the room off the record (``off=False``: put it back on), for everyone in it;
        anyone in the room may. While it is off, messages are shown to the people in the
        room but kept nowhere: not in any browser's local copy, not in ``messages`` here
        (nor in any kernel's copy), not in an export. Everyone sees a banner and a line in
        the log saying who switched. Posted by your browser, like :meth:`send`."""
        self._amend("", None, kind=RECORD_KIND, on=not off)

    @property
    def is_off_the_record(self) -> bool:
        """Whether the room is off the record, as the owner browser last mirrored it."""
        timeline = Timeline()
        for entry in self._entries:
            if _is_entry(entry) and entry.get("kind") == RECORD_KIND:
                timeline.add(cast("Message", entry))
        record = timeline.record()
        return record is not None and record.get("on") is False

    def mentions(self, message: dict[str, Any]) -> list[str]:
        """The usernames a message calls with ``@name``, among the room's people."""
        known = {p.get("user", {}).get("username", "") for p in self.users}
        known.update(
            m["user"]["username"] for m in self.messages if isinstance(m.get("user"), dict)
        )
        return mentions(str(message.get("text", "")), known)

    def export(self, path: str | os.PathLike[str]) -> Path:
        """Write the room's history to ``path``: Markdown for ``.md``, else JSON that the
        Python peer's ``import_history`` loads again. Returns the path written."""
        target = Path(path)
        now = time.time() * 1000
        if target.suffix.lower() == ".md":
            text = to_markdown(self.room, cast("list[MessageState]", self.messages), now)
        else:
            text = dumps(to_json(self.room, self._entries, now))
        target.write_text(text, encoding="utf-8")
        return target

    def _known(self, message_id: str) -> str:
        if not any(m.get("id") == message_id for m in self.messages):
            raise KeyError(f"no message {message_id!r} in room {self.room!r}")
        return message_id

    def _amend(self, text: str, mime: dict[str, str] | None, **fields: Any) -> None:
        message = comm.send(text, "", mime, fields)
        del message["to"]
        self._dispatch((message, []))

    def send_file(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        """Share the file at ``path`` with the room, peer to peer: the browser of the person
        who ran the cell (as for :meth:`send`) gets the bytes from the kernel and offers them
        to the others, who see a card and download it. Raises ValueError over 50 MB."""
        label = clean_file_name(name if name is not None else os.path.basename(os.fspath(path)))
        size = os.path.getsize(path)
        if size > FILE_LIMIT_BYTES:
            raise ValueError(size_error(f"“{label}”", size, FILE_LIMIT_BYTES))
        data = Path(path).read_bytes()
        kind = mimetypes.guess_type(label)[0] or "application/octet-stream"
        message = comm.send_file(label, kind, "")
        del message["to"]
        self._dispatch((message, [data]))

    def _dispatch(self, post: Post) -> None:
        """Post through the browser of whoever runs the cell (see :meth:`send`)."""
        session = frontend_session()
        if not session:
            if self._owner:
                self._post(post, self._owner)
            else:
                self._outbox.append(post)
            return
        chats = self._same_room()
        for chat in chats:
            peer = chat._views.get(session)
            if peer:
                chat._post(post, peer)
                return
        shown_here = [c for c in chats if session in c._views]
        if not shown_here and any(c._views for c in chats):
            raise RuntimeError(
                f"the chat of room {self.room!r} is shown in other people's browsers but not "
                f"in yours, and it would post as one of them: run `%chat {self.room}` (or "
                "display this widget) in your notebook first; nothing was sent"
            )
        # Shown here but still joining, or not shown yet: post when this browser's view is in.
        (shown_here[0] if shown_here else self)._pending.setdefault(session, []).append(post)

    def _same_room(self) -> list[Chat]:
        """This widget first, then the kernel's other open chats of the same room."""
        others = [c for c in list(Chat._live) if c is not self and c.room == self.room]
        return [self, *[c for c in others if c.comm is not None]]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # The browser that runs the displaying cell will show this widget: its cells' posts
        # wait for its view rather than being refused while the view loads.
        session = frontend_session()
        if session:
            self._views.setdefault(session, "")
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict) and "text/plain" in data:
            data["text/plain"] = self._fallback_text()
        return bundle

    def _fallback_text(self) -> str:
        """What a front end that does not render the widget shows. Among them: a person who
        shares this notebook live (jupyter-collaboration) with whoever ran the cell, since
        JupyterLab renders widgets that others' runs displayed only in a trusted notebook."""
        return (
            f"nbchat: the chat of room {self.room!r} shows here when the notebook is trusted. "
            "If someone else ran this cell in a notebook you share live, trust it "
            "(Command Palette: Trust Notebook) to join the chat as yourself, "
            f"or run `%chat {self.room}` in a cell of your own."
        )

    def on_message(self, callback: MessageCallback, remove: bool = False) -> None:
        """Call ``callback(message)`` once for every new message (ours included), in room order."""
        if remove:
            self._callbacks.remove(callback)
        else:
            self._callbacks.append(callback)

    def _post(self, post: Post, peer: str) -> None:
        message, buffers = post
        super().send({**message, "to": peer}, buffers or None)

    def _on_custom(self, _widget: object, content: object, _buffers: object) -> None:
        message = comm.parse_from_browser(content)
        kind = message["type"] if message is not None else None
        if message is not None and kind == comm.CommType.HERE:
            self._on_here(message["peer_id"])
        elif message is not None and kind == comm.CommType.CLAIM:
            self._on_claim(message)
        elif message is not None and kind == comm.CommType.MESSAGES:
            self._on_messages_patch(message)
        elif message is not None and kind == comm.CommType.SAVE_FILE:
            self._save_file(message["request"], message["name"], _buffers)
        elif kind == comm.CommType.PASSPHRASE_REQUEST:
            if self._passphrase is not None:
                super().send(comm.passphrase(self._passphrase))
        else:
            log.warning("nbchat: ignoring unknown message from the browser: %r", content)

    def _save_file(self, request: str, name: str, buffers: object) -> None:
        """A browser saves a file it received next to the notebook (the kernel's working
        directory), under a cleaned name that overwrites nothing."""
        try:
            data = _first_buffer(buffers)
            if len(data) > FILE_LIMIT_BYTES:
                raise ValueError(size_error("the file", len(data), FILE_LIMIT_BYTES))
            path = _free_path(Path.cwd(), clean_file_name(name))
            with open(path, "xb") as file:  # "x": never replace a file that appeared meanwhile
                file.write(data)
        except (OSError, ValueError) as error:
            log.warning("nbchat: could not save %r in room %s: %s", name, self.room, error)
            super().send(comm.saved(request, error=str(error)))
            return
        super().send(comm.saved(request, path=path.name))

    def _on_messages_patch(self, content: dict[str, Any]) -> None:
        """Apply ``{"from": i, "messages": [...], "done": bool}`` from the owner browser.

        Only the owner's patches count: several browsers show the widget when people share
        the kernel (or the notebook, live), and a patch from a browser that owned the widget
        before is relative to what it last sent, not to what the kernel holds now."""
        session = frontend_session()
        if session and self._owner and self._views.get(session) != self._owner:
            log.warning("nbchat: ignoring a messages patch from a browser that is not the owner")
            return
        start, batch = content["from"], content["messages"]
        base = self._incoming if self._incoming is not None else list(self._entries)
        if start > len(base):
            log.warning("nbchat: messages patch from %d but only %d held", start, len(base))
            self._incoming = None
            return
        base = base[:start] + batch
        if content["done"]:
            self._incoming = None
            self._entries = base
            self.messages = _shown(base)
        else:
            self._incoming = base

    def _on_here(self, peer_id: str) -> None:
        """A view of this widget says which peer it is; the comm message's session says
        whose browser it is in."""
        session = frontend_session()
        if not session:
            return
        self._views[session] = peer_id
        if peer_id:
            # What this browser's cells posted while no view of the room was in, here or
            # on another widget of the same room, goes out now, in order.
            for chat in self._same_room():
                for post in chat._pending.pop(session, []):
                    self._post(post, peer_id)

    def _on_claim(self, content: dict[str, Any]) -> None:
        claimant, replaces, present = content["peer_id"], content["replaces"], content["present"]
        owner_gone = self._owner not in present
        if not self._owner or (replaces == self._owner and owner_gone):
            self._owner = claimant
            for post in self._outbox:
                self._post(post, claimant)
            self._outbox.clear()

    def _on_messages(self, change: dict[str, Any]) -> None:
        fresh = [m for m in change["new"] if isinstance(m, dict) and m.get("id") not in self._seen]
        for message in fresh:
            self._seen.add(message["id"])
        for message in fresh:
            for callback in list(self._callbacks):
                try:
                    callback(message)
                except Exception:
                    # A failing callback must not stop the others or the widget's sync.
                    log.exception(
                        "nbchat: on_message callback %r failed in room %s", callback, self.room
                    )


def _is_entry(entry: dict[str, Any]) -> bool:
    user = entry.get("user")
    return (
        isinstance(entry.get("id"), str)
        and isinstance(entry.get("author"), str)
        and isinstance(entry.get("seq"), int)
        and isinstance(entry.get("clock"), int)
        and isinstance(user, dict)
        and isinstance(user.get("username"), str)
    )


def _shown(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message as the chat shows it (core/edits), with the fields a bot reads: its
    bundle or file card, and the usernames it mentions. (Entries the browser's log would
    never hold pass through as they are.)"""
    timeline = Timeline()
    for entry in entries:
        if _is_entry(entry):
            timeline.add(cast("Message", entry))
    known = {e["user"]["username"] for e in entries if _is_entry(e)}
    shown: list[dict[str, Any]] = []
    for entry in entries:
        if not _is_entry(entry):
            shown.append(entry)
            continue
        state = timeline.state(entry["id"])
        if state is None:
            continue  # an edit, a delete or a reaction: it shows in its message
        item: dict[str, Any] = {**state}
        for key in ("mime", "file"):
            if key in entry and not state["deleted"]:
                item[key] = entry[key]
        item["mentions"] = mentions(state["text"], known)
        shown.append(item)
    return shown
