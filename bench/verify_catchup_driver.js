// The page side of bench/verify_catchup.py, bundled by it once per variant (its upper-case
// placeholders are replaced first: the tree, and how the variant checks signatures).
import { Authorship } from "TREE/js/authorship";
import { MessageLog, normalizeIdentity } from "TREE/js/core/msglog";
import { b64encode, certBytes, generateKey, publicKey } from "TREE/js/core/signing";
VERIFIER_IMPORT

const session = (keys) => ({ room: "r", key: "r", path: "/", ice_servers: [], ice_transport_policy: "all",
  user: normalizeIdentity({ username: "x" }), ping_interval: 5000, alive_timeout: 60000,
  max_message_bytes: 65536, version: "", server_keys: keys });
let ready = null;

async function setup(n, batch) {
  const server = await generateKey();
  const keys = [await publicKey(server)];
  const issue = async (peer, username, key) => {
    const cert = { room: "r", peer, user: normalizeIdentity({ username }), key, sig: "" };
    cert.sig = b64encode(new Uint8Array(await crypto.subtle.sign("Ed25519", server.privateKey, certBytes(cert))));
    return cert;
  };
  const writer = new Authorship({ fetchCert: (_s, id, key) => issue(id, "alice", key), learned() {} });
  await writer.certify(session(keys), "A");
  const log = new MessageLog("A", normalizeIdentity({ username: "alice" }));
  const messages = [];
  for (let i = 0; i < n; i += 1) {
    messages.push(log.compose(`history ${String(i).padStart(6, "0")} with some *markdown* in it, about as long as a chat line`, 1_700_000_000 + i));
  }
  await Promise.all(messages.map((m) => new Promise((resolve) => writer.sign(m, resolve))));
  const frames = [];
  for (let end = n; end > 0; end -= batch) {
    for (const f of writer.outgoing("B", { type: "history", messages: messages.slice(Math.max(0, end - batch), end) })) {
      frames.push(JSON.stringify(f));
    }
  }
  return { keys, issue, frames, n };
}

function busy(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) {}
}

window.catchup = async ({ n, batch, workMs, gapMs }) => {
  if (ready === null || ready.n !== n) ready = await setup(n, batch);
  const { keys, issue, frames } = ready;
  const reader = new Authorship({ fetchCert: (_s, id, key) => issue(id, "bob", key), learned() {}, VERIFIER_OPTION });
  await reader.certify(session(UNSIGNED ? [] : keys), "B");
  let delivered = 0;
  let first = null;
  let start = 0;
  const channel = new MessageChannel();
  let next = 0;
  const arrive = () => reader.incoming("A", JSON.parse(frames[next++]), (frame) => {
    if (frame.type !== "history") return;
    delivered += frame.messages.length;
    busy(workMs);
    if (first === null) first = performance.now() - start;
    if (delivered >= n) done(performance.now() - start);
  });
  let done;
  const all = new Promise((resolve) => { done = resolve; });
  channel.port1.onmessage = () => arrive();
  start = performance.now();
  frames.forEach((_, i) => {
    if (gapMs > 0) setTimeout(arrive, i * gapMs);
    else channel.port2.postMessage(i);
  });
  const allMs = await all;
  channel.port1.close();
  return { first_ms: first, all_ms: allMs, refused: reader.refused };
};
