"""Unit tests of the signaling state machine: time is passed in, no sockets, no sleeps."""

from __future__ import annotations

import json

from tests.support.limits import limits

from nbchat.protocol import Errors
from nbchat.server.realm import Accepted, Realm, Refused


def user(name: str) -> dict:
    return {
        "username": name,
        "name": name,
        "display_name": name.title(),
        "initials": name[:1],
        "color": None,
        "avatar_url": None,
    }


class T:
    """A fake transport: the realm only ever hands it back in deliveries."""

    def __init__(self, name: str) -> None:
        self.name = name


def frames(deliveries, transport):
    return [json.loads(text) for t, text in deliveries if t is transport]


def join(realm, key, peer_id, who, now=0.0, token="t"):
    t = T(peer_id)
    out = realm.connect(key, peer_id, token, user(who), t, now)
    assert isinstance(out, Accepted), out
    return out.client, t, out.deliveries


def test_connect_sends_open_and_announces_to_subscribers():
    realm = Realm(limits())
    sub_t = T("sub")
    realm.subscribe("room", user("c"), sub_t)
    _, t, out = join(realm, "room", "a1", "alice")
    assert frames(out, t) == [{"type": "OPEN"}]
    assert frames(out, sub_t)[0]["type"] == "USER_CONNECTED"


def test_queue_expires_after_expire_timeout_and_tells_the_sender():
    realm = Realm(limits(expire_timeout=5))
    a, ta, _ = join(realm, "room", "a1", "alice")
    assert realm.receive(a, json.dumps({"type": "OFFER", "dst": "b1", "payload": 1}), 1.0) == []
    assert realm.tick(5.9) == ([], [])
    out, evict = realm.tick(6.0)
    assert frames(out, ta) == [{"type": "EXPIRE", "src": "b1", "dst": "a1"}]
    assert realm.stats()["queued"] == 0


def test_queue_is_bounded_per_destination():
    realm = Realm(limits(max_queued_per_peer=2))
    a, ta, _ = join(realm, "room", "a1", "alice")
    for i in range(2):
        assert realm.receive(a, json.dumps({"type": "OFFER", "dst": "b1", "payload": i}), 0) == []
    out = realm.receive(a, json.dumps({"type": "OFFER", "dst": "b1", "payload": 3}), 0)
    assert frames(out, ta) == [{"type": "EXPIRE", "src": "b1", "dst": "a1"}]


def test_silent_peer_is_evicted_after_alive_timeout():
    realm = Realm(limits(alive_timeout=60))
    a, ta, _ = join(realm, "room", "a1", "alice", now=0)
    b, tb, _ = join(realm, "room", "b1", "bob", now=0)
    realm.receive(b, '{"type":"HEARTBEAT"}', 30)
    assert realm.tick(59.9)[1] == []
    assert realm.tick(60.0)[1] == [a]
    realm.disconnect(a, ta, 60.0)
    assert realm.peer_ids("room") == ["b1"]


def test_time_the_server_did_not_run_counts_neither_as_silence_nor_toward_expiry():
    """The loop was frozen or starved from 7 s to 70 s: a peer last heard at 5 s is not
    silent at 70 s (what it sent meanwhile waits unread), a frame queued at 5 s has not
    expired; both count again once the server has run alive/expire_timeout seconds."""
    realm = Realm(limits(alive_timeout=60, expire_timeout=5))
    a, ta, _ = join(realm, "room", "a1", "alice", now=5)
    realm.receive(a, json.dumps({"type": "OFFER", "dst": "b1", "payload": 1}), 5)
    stalls = [(7.0, 70.0)]
    assert realm.tick(70.0, stalls) == ([], [])
    assert realm.tick(72.9, stalls) == ([], [])
    out, evict = realm.tick(73.0, stalls)  # 2 + 3 s of running loop: the frame expires
    assert frames(out, ta) == [{"type": "EXPIRE", "src": "b1", "dst": "a1"}] and evict == []
    assert realm.tick(127.9, stalls)[1] == []
    assert realm.tick(128.0, stalls)[1] == [a]  # 2 + 58 s of running loop: silent


def test_binding_outlives_the_connection_then_is_released():
    realm = Realm(limits(id_reservation_timeout=600))
    a, ta, _ = join(realm, "room", "a1", "alice")
    realm.disconnect(a, ta, 10)
    refused = realm.connect("room", "a1", "t", user("mallory"), T("m"), 500)
    assert isinstance(refused, Refused) and json.loads(refused.frame)["type"] == "ID-TAKEN"
    # the owner comes back with it
    back = realm.connect("room", "a1", "t2", user("alice"), T("a"), 520)
    assert isinstance(back, Accepted)
    realm.disconnect(back.client, back.client.transport, 520)
    realm.tick(1120)
    assert realm.stats() == {"rooms": 0, "clients": 0, "bindings": 0, "queued": 0, "subscribers": 0}
    assert isinstance(realm.connect("room", "a1", "t", user("mallory"), T("m"), 1121), Accepted)


def test_stale_transport_close_after_reconnect_does_not_remove_the_peer():
    realm = Realm(limits())
    a, t_old, _ = join(realm, "room", "a1", "alice", token="tok")
    again = realm.connect("room", "a1", "tok", user("alice"), T("new"), 1)
    assert isinstance(again, Accepted) and again.replaced is t_old
    assert realm.disconnect(a, t_old, 2) == []
    assert realm.peer_ids("room") == ["a1"]


def test_rate_limit_refills_over_time():
    realm = Realm(limits(rate_limit=10, rate_burst=2))
    a, ta, _ = join(realm, "room", "a1", "alice")
    ok = '{"type":"HEARTBEAT"}'
    assert realm.receive(a, ok, 0) == []
    assert realm.receive(a, ok, 0) == []
    assert frames(realm.receive(a, ok, 0), ta)[0]["payload"]["msg"] == Errors.RATE_LIMIT
    assert realm.receive(a, ok, 0.1) == []  # 0.1 s at 10/s refills one frame


def test_non_string_query_values_are_refused_cleanly():
    realm = Realm(limits())
    for key, peer_id, token in [
        (None, "a", "t"),
        ("room", None, "t"),
        ("room", "a", None),
        ("room", "a b", "t"),
        ("room", "a", "x" * 200),
    ]:
        out = realm.connect(key, peer_id, token, user("alice"), T("x"), 0)
        assert isinstance(out, Refused)
        assert json.loads(out.frame)["type"] == "ERROR"


# ---- the relay's JSON fast path --------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from nbchat.server.realm import _parse_json  # noqa: E402

_json_ish = st.text(alphabet=' \t\n{}[]":,.-+0123456789eEtrufalsnNI\\u"abc', max_size=40)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        _json_ish,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
            lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
            max_leaves=8,
        ).map(json.dumps),
    ),
    st.sampled_from(["", " ", "\n", "x"]),
)
def test_the_fast_json_path_accepts_and_refuses_exactly_what_json_loads_does(text, pad):
    for candidate in (text, pad + text, text + pad):
        try:
            expected: object = json.loads(candidate)
        except ValueError:
            expected = ValueError
        try:
            got: object = _parse_json(candidate)
        except ValueError:
            got = ValueError
        assert repr(got) == repr(expected)


def test_a_relayed_frame_keeps_the_senders_json_and_gets_our_src():
    realm = Realm(limits())
    a, ta, _ = join(realm, "k", "a", "ann")
    b, tb, _ = join(realm, "k", "b", "bob")
    text = '{"type":"OFFER","dst":"b","payload":{"sdp":"v=0","n":1.50}}'
    [(to, out)] = realm.receive(a, text, 1.0)
    assert to is tb and out == '{"src":"a",' + text[1:]  # 1.50 stays 1.50
    [(to, out)] = realm.receive(a, '{"type":"OFFER","dst":"b","payload":1,"src":"b"}', 1.0)
    assert json.loads(out) == {"type": "OFFER", "src": "a", "dst": "b", "payload": 1}


def test_bindings_expire_exactly_when_due_without_a_scan_of_all():
    # The tick drops expired bindings from a heap of releases: an id taken back and
    # released later, or still held, must survive its first release's deadline.
    realm = Realm(limits(id_reservation_timeout=600))
    issued = realm.reserve_id("room", "bob", 0)  # issued, never used
    a, ta, _ = join(realm, "room", "a1", "alice")
    realm.disconnect(a, ta, 10)  # first release
    back = realm.connect("room", "a1", "t2", user("alice"), T("a"), 520)
    assert isinstance(back, Accepted)
    realm.disconnect(back.client, back.client.transport, 520)  # released again, later
    c, _, _ = join(realm, "room", "c1", "carol")  # held throughout
    realm.tick(700)  # past 0 + 600 and 10 + 600, not 520 + 600
    assert realm.owner("room", issued) is None
    assert realm.owner("room", "a1") == "alice"
    realm.tick(1120)
    assert realm.owner("room", "a1") is None
    realm.tick(100_000)
    assert realm.owner("room", "c1") == "carol"
