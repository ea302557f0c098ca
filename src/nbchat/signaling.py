"""``python -m nbchat.signaling``: the same as the ``nbchat-signaling`` command."""

from __future__ import annotations

from .server.standalone import main

if __name__ == "__main__":
    main()
