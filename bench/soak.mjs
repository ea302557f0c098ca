// Soak generator: C PeerJS-protocol clients across R rooms joining and leaving continuously.
//
// Each client slot loops until the deadline: connect with a fresh id, wait for OPEN,
// (one in four also watches presence), live for a random lifeMin–lifeMax s sending OFFERs to
// random peers *of its own room* that are connected, HEARTBEAT every second, then
// leave the room's set, wait for frames in flight, and close (half politely, half
// abruptly by terminating the TCP socket). A frame counts as lost if its receiver never
// got it; ERROR / EXPIRE frames and frames from another room count as errors.
// Usage: node bench/soak.mjs '<json config>'; prints one JSON line per second and a final one.
import WebSocket from "ws";

const cfg = JSON.parse(process.argv[2]);
const { headers, clients, rooms, duration, rate = 2, lifeMin = 5, lifeMax = 15 } = cfg; // rate: OFFERs/s per client; life: s
// `base`: the server's URL, or a list of them (several processes sharing rooms through a
// broker): slot i always connects to base[i % n].
const bases = Array.isArray(cfg.base) ? cfg.base : [cfg.base];
// abrupt: half the clients leave by killing their TCP connection (default); false: all
// close with a handshake.
const abrupt = cfg.abrupt ?? true;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rand = (n) => Math.floor(Math.random() * n);
const deadline = Date.now() + duration * 1000;

const live = Array.from({ length: rooms }, () => new Map()); // room -> id -> client
let sent = 0, received = 0, errors = 0, crossRoom = 0, joins = 0, leaves = 0, refused = 0;
let presenceFrames = 0;
let seq = 0;
const inFlight = new Map(); // id -> frames sent to it and not yet received
const errorSamples = [];
const noteError = (what) => { errors++; if (errorSamples.length < 10) errorSamples.push(what); };

// Resolves with the socket and its first frame: the server may send OPEN in the same
// TCP segment as the handshake, so the listener is attached before "open" fires.
function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once("close", () => reject(new Error("closed before the first frame")));
    ws.once("message", (data) => resolve([ws, JSON.parse(data.toString())]));
  });
}

async function lifetime(slot) {
  const base = bases[slot % bases.length];
  const room = rand(rooms);
  const key = `soak-${room}`;
  const id = `s${slot}-${seq++}`;
  const [ws, first] = await open(`${base}nbchat/peerjs?key=${key}&id=${id}&token=t${slot}`);
  if (first.type !== "OPEN") {
    refused++;
    ws.terminate();
    return;
  }
  joins++;
  ws.on("message", (data) => {
    const frame = JSON.parse(data.toString());
    if (frame.type === "OFFER") {
      if (frame.dst !== id || frame.payload.room !== room) crossRoom++;
      else { received++; inFlight.set(id, inFlight.get(id) - 1); }
    } else noteError(JSON.stringify(frame).slice(0, 200));
  });
  let presence = null;
  if (slot % 4 === 0) {
    [presence] = await open(`${base}nbchat/presence?key=${key}`);
    presenceFrames++; // the roster
    presence.on("message", () => presenceFrames++);
  }
  inFlight.set(id, 0);
  live[room].set(id, ws);
  const end = Math.min(deadline, Date.now() + 1000 * lifeMin + rand(1000 * (lifeMax - lifeMin)));
  let nextBeat = Date.now() + 1000;
  while (Date.now() < end) {
    const peers = [...live[room].keys()].filter((p) => p !== id);
    if (peers.length) {
      const dst = peers[rand(peers.length)];
      inFlight.set(dst, inFlight.get(dst) + 1);
      ws.send(JSON.stringify({ type: "OFFER", dst, payload: { room, sdp: "v=0" } }));
      sent++;
    }
    if (Date.now() >= nextBeat) {
      ws.send('{"type":"HEARTBEAT"}');
      nextBeat += 1000;
    }
    await sleep(1000 / rate);
  }
  live[room].delete(id); // nobody picks us any more
  // Stay until every frame addressed to us has arrived (the server may lag under load);
  // whatever has not arrived after 15 s counts as lost.
  const waitUntil = Date.now() + 15000;
  while (inFlight.get(id) > 0 && Date.now() < waitUntil) {
    if (Date.now() >= nextBeat) { ws.send('{"type":"HEARTBEAT"}'); nextBeat += 1000; }
    await sleep(50);
  }
  inFlight.delete(id);
  if (slot % 2 || !abrupt) ws.close(); else ws.terminate();
  if (presence) presence.close();
  leaves++;
}

async function slotLoop(slot) {
  while (Date.now() < deadline) {
    try {
      await lifetime(slot);
    } catch (e) {
      noteError(`slot ${slot}: ${e.message}`);
      await sleep(200);
    }
  }
}

const ticker = setInterval(() => {
  process.stdout.write(JSON.stringify({ event: "tick", sent, received, errors, joins, leaves,
    online: live.reduce((n, m) => n + m.size, 0) }) + "\n");
}, 5000);
const slots = [];
for (let i = 0; i < clients; i++) {
  slots.push(slotLoop(i));
  if (i % 50 === 49) await sleep(50); // ramp up
}
await Promise.all(slots);
clearInterval(ticker);
await sleep(1000);
process.stdout.write(JSON.stringify({ event: "done", sent, received, lost: sent - received, errors,
  crossRoom, refused, joins, leaves, presenceFrames, errorSamples }) + "\n");
