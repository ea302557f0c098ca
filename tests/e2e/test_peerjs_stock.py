"""The stock peerjs 1.5 browser client (from npm, not our widget) works against nbchat."""

from __future__ import annotations

from playwright.sync_api import Page
from tests.support.lab import REPO, Lab

PEERJS = REPO / "node_modules" / "peerjs" / "dist" / "peerjs.min.js"

SCRIPT = """
window.log = [];
window.start = async (room) => {
  const session = await (await fetch(window.NBCHAT_BASE + "nbchat/session?room=" + encodeURIComponent(room))).json();
  const peer = new Peer({
    host: location.hostname, port: Number(location.port), path: session.path,
    key: session.key, secure: false, config: {iceServers: session.ice_servers}, debug: 0,
  });
  window.peer = peer;
  peer.on("error", (e) => window.log.push("error:" + e.type));
  peer.on("connection", (conn) => {
    conn.on("data", (d) => { window.log.push("got:" + d.text); conn.send({text: "pong " + d.text}); });
  });
  return await new Promise((resolve, reject) => {
    peer.on("open", resolve);
    setTimeout(() => reject(new Error("no OPEN")), 15000);
  });
};
window.dial = (id, text) => new Promise((resolve, reject) => {
  const conn = window.peer.connect(id, {reliable: true, serialization: "json"});
  conn.on("open", () => conn.send({text}));
  conn.on("data", (d) => resolve(d.text));
  setTimeout(() => reject(new Error("no reply")), 20000);
});
"""


def stock_page(page: Page, lab: Lab) -> None:
    """A page served by Jupyter itself (so its login cookie and address space apply)
    with the stock peerjs bundle from npm loaded into it."""
    page.goto(f"{lab.url}api/status?token={lab.token}")  # sets Jupyter's login cookie
    page.add_script_tag(path=str(PEERJS))
    page.evaluate("([base]) => { window.NBCHAT_BASE = base; }", [lab.base_url])
    page.add_script_tag(content=SCRIPT)


def test_two_stock_peerjs_pages_exchange_data_and_a_third_room_cannot_reach_them(
    lab: Lab, new_user
) -> None:
    # bypass_csp: the page is a Jupyter API response (CSP default-src 'none') that we
    # load the npm peerjs bundle into, to be on Jupyter's origin and address space.
    a, b, c = (new_user(bypass_csp=True) for _ in range(3))
    for page in (a, b, c):
        stock_page(page, lab)
    id_a = a.evaluate("start('notebooks/analysis.ipynb')")
    id_b = b.evaluate("start('notebooks/analysis.ipynb')")
    id_c = c.evaluate("start('another-room')")
    assert len({id_a, id_b, id_c}) == 3

    assert a.evaluate("([id]) => dial(id, 'hello from A')", [id_b]) == "pong hello from A"
    assert b.evaluate("([id]) => dial(id, 'hello from B')", [id_a]) == "pong hello from B"
    assert a.evaluate("log") == ["got:hello from B"]
    assert b.evaluate("log") == ["got:hello from A"]

    # C is in another room: its offer to A is never relayed; the server expires it.
    c.evaluate("([id]) => { window.peer.connect(id, {reliable: true}); }", [id_a])
    c.wait_for_function("() => window.log.includes('error:peer-unavailable')", timeout=20_000)
    assert a.evaluate("log") == ["got:hello from B"]
