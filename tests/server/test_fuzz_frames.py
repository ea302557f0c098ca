"""Property and fuzz tests: no input crashes signaling, and bad input only hurts its sender."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.limits import limits

from nbchat.protocol import RELAYED_TYPES
from nbchat.server.realm import Accepted, Realm

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
frame_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            [
                "OFFER",
                "ANSWER",
                "CANDIDATE",
                "LEAVE",
                "EXPIRE",
                "HEARTBEAT",
                "OPEN",
                "ERROR",
                "ID-TAKEN",
                "offer",
                "",
            ]
        )
        | json_values,
        "dst": st.sampled_from(["b1", "a1", "nobody", "", "../x", "b1\x00"]) | json_values,
        "src": json_values,
        "payload": json_values,
    },
)
texts = (
    st.text(max_size=300)
    | st.binary(max_size=300)
    | json_values.map(json.dumps)
    | frame_like.map(json.dumps)
    | st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)
)


def user(name: str) -> dict:
    return {
        "username": name,
        "name": name,
        "display_name": name,
        "initials": None,
        "color": None,
        "avatar_url": None,
    }


def two_peers() -> tuple[Realm, object, object, object, object]:
    realm = Realm(limits(rate_limit=1e9, rate_burst=1e9, max_message_bytes=4096))
    ta, tb = object(), object()
    a = realm.connect("room", "a1", "t", user("alice"), ta, 0)
    b = realm.connect("room", "b1", "t", user("bob"), tb, 0)
    assert isinstance(a, Accepted) and isinstance(b, Accepted)
    return realm, a.client, ta, b.client, tb


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(texts, min_size=1, max_size=10))
def test_any_frames_never_crash_and_only_valid_relays_reach_others(frames):
    realm, a, ta, b, tb = two_peers()
    for text in frames:
        out = realm.receive(a, text, 1.0)
        for transport, sent in out:
            frame = json.loads(sent)
            if transport is ta and frame.get("dst") != "a1":
                assert frame["type"] in ("ERROR", "EXPIRE")
            elif transport is ta:  # a frame a peer addressed to itself comes back to it
                assert frame["src"] == "a1" and frame["type"] in RELAYED_TYPES
            else:
                assert transport is tb
                assert frame["type"] in RELAYED_TYPES
                assert frame["src"] == "a1" and frame["dst"] == "b1"
    # the realm is intact: b still reaches a
    out = realm.receive(b, json.dumps({"type": "OFFER", "dst": "a1", "payload": 1}), 2.0)
    assert [(t, json.loads(s)["src"]) for t, s in out] == [(ta, "b1")]
    realm.tick(100.0)


@settings(max_examples=300, deadline=None)
@given(json_values, json_values, json_values)
def test_any_connect_query_never_crashes(key, peer_id, token):
    realm = Realm(limits())
    out = realm.connect(key, peer_id, token, user("alice"), object(), 0)
    assert isinstance(out, Accepted) or json.loads(out.frame)["type"] in ("ERROR", "ID-TAKEN")


async def test_fuzz_corpus_over_a_real_socket_leaves_the_server_working(login):
    """Random bytes and mutated frames over a real socket: errors for the sender only."""
    rng = random.Random(20261127)
    a, b = await login(), await login()
    wa, ida = await a.signal("fuzz")
    wb, idb = await b.signal("fuzz")
    valid = json.dumps({"type": "OFFER", "dst": idb, "payload": {"sdp": "v=0"}})
    corpus = []
    for _ in range(150):
        kind = rng.random()
        if kind < 0.3:
            corpus.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))))
        elif kind < 0.6:
            chars = list(valid)
            for _ in range(rng.randint(1, 5)):
                swap = rng.choice([0, 0x7B, 0x22, 0xD800 - 1, 0x1F600])
                chars[rng.randrange(len(chars))] = chr(swap)
            corpus.append("".join(chars))
        else:
            corpus.append(valid[: rng.randrange(len(valid))])
    for item in corpus:
        await wa.conn.write_message(item, binary=isinstance(item, bytes))
    # Whatever the corpus did, a clean frame still goes through, from both sides.
    await wa.send({"type": "OFFER", "dst": idb, "payload": "after-fuzz"})
    while (await wb.recv())["payload"] != "after-fuzz":
        pass
    await wb.send({"type": "ANSWER", "dst": ida, "payload": "reply"})
    while (frame := await wa.recv())["type"] != "ANSWER":
        assert frame["type"] in ("ERROR", "EXPIRE")
    assert frame == {"type": "ANSWER", "src": idb, "dst": ida, "payload": "reply"}
