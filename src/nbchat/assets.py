"""The widget's bundle, and how a kernel's widget asks the page to load it.

The bundle (``static/widget.js``, ~0.5 MB) used to be the widget's ``_esm``: every ``%chat``
sent it through the kernel's comm, and the page kept it twice (the model's ``_esm`` string
and the module's source). Now ``_esm`` is :func:`loader_esm`, ~1.7 KB that import
the bundle from the Jupyter server (``nbchat/static/widget.js``, served by the server
extension behind Jupyter's auth, ``server/handlers.py``), versioned by its digest so the
browser may cache it. The import carries the page's ``_xsrf`` cookie in its query (a hub's
single-user server accepts its login cookie only with it, and a module's import cannot send
a header; Jupyter scrubs ``_xsrf`` from its logs). With ``ANYWIDGET_HMR`` set
(anywidget's live reload while developing the front end) the widget carries the bundle
itself, as before.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["ASSETS", "STATIC", "asset", "bundle_version", "loader_esm"]

STATIC = Path(__file__).parent / "static"
#: What the server hands out under ``nbchat/static/``, with its content type.
ASSETS = {
    "widget.js": "text/javascript; charset=utf-8",
    "widget.css": "text/css; charset=utf-8",
}

_read: dict[str, tuple[int, bytes, str]] = {}  # name -> (mtime_ns, bytes, digest)


def asset(name: str) -> tuple[bytes, str]:
    """The bytes of one of ASSETS and their digest (re-read when the file changes: a
    rebuild while the server runs is served at once)."""
    path = STATIC / name
    mtime = path.stat().st_mtime_ns
    held = _read.get(name)
    if held is None or held[0] != mtime:
        data = path.read_bytes()
        held = _read[name] = (mtime, data, hashlib.sha256(data).hexdigest()[:16])
    return held[1], held[2]


def bundle_version() -> str:
    """The digest the loader asks for (``?v=``): a new build is a new URL. ("unbuilt" in a
    checkout whose front end was never built: the server then answers 404, said in the
    widget.)"""
    try:
        return asset("widget.js")[1]
    except FileNotFoundError:
        return "unbuilt"


_LOADER = r"""// nbchat: the chat's bundle comes from the Jupyter server, not through the kernel.
// (Base URL and cookie read as js/jupyterPage.ts does: this runs before that code exists.)
const config = document.getElementById("jupyter-config-data");
let base = "/";
try {
  base = JSON.parse(config ? config.textContent : "{}").baseUrl || "/";
} catch (error) {
  console.warn("nbchat: #jupyter-config-data is not JSON; assuming base URL '/'", error);
}
if (!base.endsWith("/")) base += "/";
// A hub's single-user server takes its cookie only with the XSRF token (a module's import
// cannot send a header): in the query, as for Jupyter's downloads.
const xsrf = /(?:^|;\s*)_xsrf=([^;]*)/.exec(document.cookie);
const bundle = new URL(base + "nbchat/static/widget.js?v=__VERSION__", location.href).href;
const url = bundle + (xsrf ? "&_xsrf=" + xsrf[1] : "");
export default async () => {
  try {
    const widget = (await import(url)).default;
    return typeof widget === "function" ? await widget() : widget;
  } catch (failure) {
    // The browser's message repeats the URL it tried: without the XSRF token, as shown.
    const error = String(failure).split(url).join(bundle);
    console.error("nbchat: could not load " + bundle + ": " + error);
    return {
      render({ el }) {
        const note = document.createElement("div");
        note.className = "nbchat-load-error";
        note.setAttribute("role", "alert");
        note.textContent =
          "nbchat could not load its chat from this Jupyter server (" +
          (error.includes(bundle) ? error : bundle + ": " + error) +
          "). Is the nbchat server extension enabled here? (jupyter server extension list)";
        el.replaceChildren(note);
      },
    };
  }
};
"""


def loader_esm() -> str:
    """The widget's ``_esm``: imports the bundle this server serves, at this version."""
    return _LOADER.replace("__VERSION__", json.dumps(bundle_version())[1:-1])
