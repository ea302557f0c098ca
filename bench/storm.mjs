// Reconnect storm: C PeerJS-protocol sockets connect, then all drop at once and reconnect.
//
// Speaks only the PeerJS server protocol, so the same storm hits npm `peer` and nbchat.
// Usage: node bench/storm.mjs '<json config>'  (bench/reconnect_storm.py builds the config)
// Prints one JSON object per line: {"event":"connected",...} then {"event":"storm",...}.
//
// The storm: every client kills its TCP connection (as a dropped network or a crashed
// server does: no close handshake) and at once opens a new socket with the same id and
// token, as PeerJS's reconnect does; at most `inflight` handshakes are open at a time
// (0 = all at once). A reconnect that fails (refused, closed or errored before OPEN) is
// counted and retried after `retryMs`. The server's CPU (utime + stime from /proc) is
// read just before the drop and when the last client got its OPEN.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";

const cfg = JSON.parse(process.argv[2]);
const {
  url, // ws://host:port/path/peerjs?key=  (the room key, id and token are appended)
  rooms = 1, // client i joins room `${roomPrefix}${i % rooms}` (PeerServer: one key)
  roomPrefix = "",
  headers = [{}], // per-user headers (Cookie, Origin...); client i uses headers[i % n]
  clients,
  connectConcurrency = 64,
  inflight = 0,
  retryMs = 100,
  timeout = 120,
  pid,
} = cfg;

const TICKS = 100; // USER_HZ on Linux
function cpuSeconds() {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / TICKS;
}
function rssKiB() {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
}
function machineBusySeconds() {
  const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return (f.slice(0, 8).reduce((a, b) => a + b, 0) - f[3] - (f[4] || 0)) / TICKS;
}
const selfCpuSeconds = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const ids = Array.from({ length: clients }, (_, i) => `s${i}x${Math.random().toString(36).slice(2, 8)}`);
const tokens = Array.from({ length: clients }, (_, i) => `t${i}${Math.random().toString(36).slice(2, 6)}`);
const sockets = new Array(clients);
let failures = 0;
const failureKinds = {};

// One attempt: resolves true on OPEN, false on any failure before it.
function attempt(i) {
  return new Promise((resolve) => {
    const room = rooms > 1 || roomPrefix ? `${roomPrefix}${i % rooms}` : "";
    const q = `${room}&id=${ids[i]}&token=${tokens[i]}`;
    const ws = new WebSocket(`${url}${q}`, { headers: headers[i % headers.length], perMessageDeflate: false });
    let settled = false;
    const fail = (kind) => {
      if (settled) return;
      settled = true;
      failures++;
      failureKinds[kind] = (failureKinds[kind] || 0) + 1;
      ws.terminate();
      resolve(false);
    };
    ws.on("message", (data) => {
      if (settled) return;
      const text = data.toString();
      if (text.includes('"OPEN"')) {
        settled = true;
        sockets[i] = ws;
        resolve(true);
      } else fail(text.slice(0, 80));
    });
    ws.on("error", (e) => fail(e.code || e.message));
    ws.on("close", (code) => fail(`closed ${code}`));
    ws.on("unexpected-response", (_req, res) => fail(`HTTP ${res.statusCode}`));
  });
}

async function connect(i, deadline) {
  while (!(await attempt(i))) {
    if (performance.now() > deadline) return false;
    await sleep(retryMs);
  }
  return true;
}

async function runAll(limit, deadline) {
  let next = 0, ok = 0;
  const worker = async () => { while (next < clients) if (await connect(next++, deadline)) ok++; };
  await Promise.all(Array.from({ length: limit > 0 ? Math.min(limit, clients) : clients }, worker));
  return ok;
}

const rssBefore = rssKiB();
const cpu0 = cpuSeconds();
let t = performance.now();
let ok = await runAll(connectConcurrency, t + timeout * 1000);
emit({
  event: "connected", clients, ok, failures, connect_s: (performance.now() - t) / 1000,
  connect_cpu_s: cpuSeconds() - cpu0, rss_before_kib: rssBefore, rss_connected_kib: rssKiB(),
});
if (ok < clients) process.exit(1);
await sleep(1000);

// ---- the storm ----------------------------------------------------------------------------
failures = 0;
for (const k of Object.keys(failureKinds)) delete failureKinds[k];
const rssStorm0 = rssKiB();
const busy0 = machineBusySeconds();
const self0 = selfCpuSeconds();
const stormCpu0 = cpuSeconds();
t = performance.now();
const epoch0 = Date.now() / 1000;
for (const ws of sockets) ws.terminate();
ok = await runAll(inflight, t + timeout * 1000);
const wall = (performance.now() - t) / 1000;
const cpuOpen = cpuSeconds() - stormCpu0;
const busy = machineBusySeconds() - busy0;
const self = selfCpuSeconds() - self0;
await sleep(1000); // what the server still does right after (closing the old sockets' state)
emit({
  event: "storm", clients, ok, failures, failure_kinds: failureKinds, wall_s: wall,
  cpu_s: cpuOpen, cpu_settled_s: cpuSeconds() - stormCpu0,
  generator_cpu_s: self, other_cpu_s: busy - cpuOpen - self,
  rss_before_kib: rssStorm0, rss_after_kib: rssKiB(), epoch_start: epoch0, epoch_open: epoch0 + wall,
});
for (const ws of sockets) if (ws) ws.terminate();
process.exit(0);
