// Signaling load generator: C PeerJS-protocol sockets relaying OFFER frames to random peers.
//
// Speaks only the PeerJS server protocol, so the same load hits npm `peer` and nbchat.
// Measures at the receiver (latency, loss) and reads the server's CPU and RSS from /proc.
// Usage: node bench/loadgen.mjs '<json config>'  (bench/run.py builds the config)
// Prints one JSON object per line: {"event":"connected",...} then {"event":"phase",...}
// for each phase not marked `warmup` (a warm-up phase lets the JIT and allocators settle).
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";

const cfg = JSON.parse(process.argv[2]);
const {
  url, // ws://host:port/path/peerjs?key=KEY  (id and token are appended); or a list of
  // such URLs (several server processes): client i connects to url[i % url.length]
  headers = {}, // e.g. {Cookie: "..."} for nbchat
  clients,
  connectConcurrency = 64,
  pid, // server process to measure (or a list: CPU and RSS are summed, CPU also per pid)
  auxPids = [], // helpers whose CPU is reported apart (e.g. redis-server)
  phases, // [{rate: msgs/s or 0 for closed-loop max, duration: s, window: in-flight cap}]
  payloadBytes = 300,
  drainTimeout = 10,
} = cfg;

const TICKS = 100; // USER_HZ on Linux
const urls = Array.isArray(url) ? url : [url];
const pids = Array.isArray(pid) ? pid : [pid];
function cpuOf(p) {
  const stat = readFileSync(`/proc/${p}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / TICKS; // utime + stime (fields 14, 15)
}
const cpuSeconds = () => pids.reduce((sum, p) => sum + cpuOf(p), 0);
const cpuPerPid = () => pids.map(cpuOf);
function sysOf(p) {
  const stat = readFileSync(`/proc/${p}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[12]) / TICKS; // stime
}
const sysPerPid = () => pids.map(sysOf);
// Voluntary context switches of the server processes (each one a sleep in epoll, so a
// wakeup) and involuntary ones (a core taken away: contention).
function countsOf(p) {
  const st = readFileSync(`/proc/${p}/status`, "utf8");
  const num = (re) => Number(re.exec(st)[1]);
  return [num(/^voluntary_ctxt_switches:\s+(\d+)/m), num(/^nonvoluntary_ctxt_switches:\s+(\d+)/m)];
}
const counts = () => pids.map(countsOf).reduce((a, b) => [a[0] + b[0], a[1] + b[1]], [0, 0]);
const auxCpu = () => auxPids.reduce((sum, p) => sum + cpuOf(p), 0);
function rssKiB() {
  let total = 0;
  for (const p of pids) {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, "utf8"));
    total += Number(m[1]);
  }
  return total;
}
// Busy CPU seconds of the whole machine (all cores), to tell how much else was running.
function machineBusySeconds() {
  const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] || 0); // idle + iowait
  return (f.slice(0, 8).reduce((a, b) => a + b, 0) - idle) / TICKS;
}
const selfCpuSeconds = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A plausible SDP-like blob of printable ASCII that needs no JSON escaping.
const SDP = ("v=0 o=- 4611731400430051336 2 IN IP4 127.0.0.1 s=- t=0 0 a=group:BUNDLE 0 " +
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel c=IN IP4 0.0.0.0 a=ice-ufrag:").repeat(4)
  .slice(0, payloadBytes);

// ---- per-phase receive state ------------------------------------------------------------
let phase = -1;
let received = 0;
let wrongDst = 0;
let errors = 0;
let lat = new Float64Array(1 << 20);
// With several server URLs: latency of relays whose sender and receiver are on one
// process vs on two (the sender's index travels in the payload as "s").
let latSame = new Float64Array(1 << 20), nSame = 0;
let latCross = new Float64Array(1 << 20), nCross = 0;
let onReceive = null; // closed-loop refill hook

const ids = [];
const sockets = [];

// The OFFERs we sent come back as {"src":…,"type":"OFFER","dst":…,"payload":{"sdp":"…",
// "t":T,"p":P[,"s":S]}} with an SDP free of quotes: read those fields with string
// searches (a JSON.parse per frame was a good part of this generator's CPU, which
// competes with the servers on a small machine); anything else is parsed in full.
// A mask of zeros is a valid RFC 6455 mask that lets `ws` skip masking (the server
// unmasks every frame the same way whatever the key), and our own frames are ASCII.
const zeroMask = (mask) => mask.fill(0);
const cheap = process.env.LOADGEN_PLAIN !== "1";
// LOADGEN_PLAIN=1: the former generator (random masks, UTF-8 checks, JSON.parse), to compare.
const TAIL = /"t":([0-9.e+-]+),"p":(\d+)(?:,"s":(\d+))?\}\}$/;
function arrived(i, ms, sender) {
  if (received < lat.length) lat[received] = ms;
  if (urls.length > 1) {
    if (sender % urls.length === i % urls.length) { if (nSame < latSame.length) latSame[nSame++] = ms; }
    else if (nCross < latCross.length) latCross[nCross++] = ms;
  }
  received++;
  if (onReceive) onReceive();
}
function handle(i, data) {
  if (cheap) {
    const text = data.toString("latin1");
    const tail = text.includes('"type":"OFFER"') ? TAIL.exec(text.slice(-60)) : null;
    if (tail) {
      if (Number(tail[2]) !== phase) return; // a straggler from an earlier phase (counted as lost there)
      const d = text.indexOf('"dst":"') + 7;
      if (text.slice(d, text.indexOf('"', d)) !== ids[i]) wrongDst++;
      arrived(i, performance.now() - Number(tail[1]), Number(tail[3]));
      return;
    }
  }
  const text = data.toString();
  const msg = JSON.parse(text);
  if (msg.type === "OFFER") {
    const p = msg.payload;
    if (p.p !== phase) return; // a straggler from an earlier phase (counted as lost there)
    if (msg.dst !== ids[i]) wrongDst++;
    arrived(i, performance.now() - p.t, p.s);
  } else if (msg.type === "ERROR" || msg.type === "EXPIRE") {
    errors++;
    if (errors <= 5) console.error(`client ${i}: ${text}`);
  }
}

// ---- connect ----------------------------------------------------------------------------
function connectOne(i) {
  return new Promise((resolve, reject) => {
    const id = `b${i}x${Math.random().toString(36).slice(2, 8)}`;
    const ws = new WebSocket(`${urls[i % urls.length]}&id=${id}&token=t${i}`, {
      headers, perMessageDeflate: false,
      ...(cheap ? { generateMask: zeroMask, skipUTF8Validation: true } : {}),
    });
    let opened = false;
    ws.on("message", (data) => {
      if (!opened) {
        const msg = JSON.parse(data.toString());
        if (msg.type === "OPEN") {
          opened = true;
          ids[i] = id;
          sockets[i] = ws;
          resolve();
        } else reject(new Error(`client ${i}: ${data}`));
        return;
      }
      handle(i, data);
    });
    ws.on("error", (e) => { if (!opened) reject(e); else console.error(`client ${i}:`, e.message); });
    ws.on("close", (code) => {
      if (!opened) reject(new Error(`client ${i} closed ${code} before OPEN`));
      else if (!closing) { console.error(`client ${i} closed ${code}`); lostSockets++; }
    });
  });
}
let closing = false;
let lostSockets = 0;

const rssBefore = rssKiB();
const cpuBeforeConnect = cpuSeconds();
const t0 = performance.now();
{
  let next = 0;
  const worker = async () => { while (next < clients) await connectOne(next++); };
  await Promise.all(Array.from({ length: Math.min(connectConcurrency, clients) }, worker));
}
const connectSeconds = (performance.now() - t0) / 1000;
await sleep(1000); // let the server settle before reading RSS
emit({
  event: "connected", clients, connect_s: connectSeconds,
  connect_cpu_s: cpuSeconds() - cpuBeforeConnect,
  rss_before_kib: rssBefore, rss_connected_kib: rssKiB(),
});

// ---- load phases ------------------------------------------------------------------------
// LOADGEN_LOCALITY=same (several URLs): every frame goes to a client of the sender's own
// process, so no relay crosses processes (what two processes cost without the hop).
const sameOnly = process.env.LOADGEN_LOCALITY === "same" && urls.length > 1;
function sendOne() {
  const i = (Math.random() * clients) | 0;
  let j = (Math.random() * (clients - 1)) | 0;
  if (j >= i) j++;
  while (sameOnly && (j % urls.length !== i % urls.length || j === i)) j = (Math.random() * clients) | 0;
  const s = urls.length > 1 ? `,"s":${i}` : "";
  sockets[i].send(
    `{"type":"OFFER","dst":"${ids[j]}","payload":{"sdp":"${SDP}","t":${performance.now()},"p":${phase}${s}}}`,
  );
}

function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

for (let pi = 0; pi < phases.length; pi++) {
  const { rate, duration, window = 2000, warmup = false } = phases[pi];
  phase = pi; received = 0; wrongDst = 0; errors = 0; onReceive = null; nSame = 0; nCross = 0;
  let sent = 0;
  const cpu0 = cpuSeconds();
  const perPid0 = cpuPerPid();
  const aux0 = auxCpu();
  const busy0 = machineBusySeconds();
  const self0 = selfCpuSeconds();
  const selfSys0 = process.cpuUsage().system;
  const sys0 = sysPerPid();
  const counts0 = counts();
  const start = performance.now();
  const end = start + duration * 1000;
  if (rate > 0) {
    // Open loop: keep the offered rate whatever the server does (latency shows a backlog).
    while (performance.now() < end) {
      const due = Math.floor((rate * (performance.now() - start)) / 1000);
      while (sent < due) { sendOne(); sent++; }
      await sleep(1);
    }
  } else {
    // Closed loop: `window` frames in flight; each arrival sends the next.
    let stop = false;
    onReceive = () => { if (!stop) { sendOne(); sent++; } };
    for (let k = 0; k < window; k++) { sendOne(); sent++; }
    await sleep(duration * 1000);
    stop = true;
  }
  const sendSeconds = (performance.now() - start) / 1000;
  const receivedInWindow = received;
  const drainUntil = performance.now() + drainTimeout * 1000;
  while (received < sent && performance.now() < drainUntil) await sleep(5);
  const cpu = cpuSeconds() - cpu0;
  const perPid = cpuPerPid().map((c, k) => c - perPid0[k]);
  const sysPid = sysPerPid().map((c, k) => c - sys0[k]);
  const [wakeups, preempted] = counts().map((c, k) => c - counts0[k]);
  const generatorSys = (process.cpuUsage().system - selfSys0) / 1e6;
  const aux = auxCpu() - aux0;
  // CPU used by neither the server nor this generator: other people's jobs (noise).
  const otherCpu = machineBusySeconds() - busy0 - cpu - aux - (selfCpuSeconds() - self0);
  const sortedOf = (a, k) => Array.from(a.subarray(0, Math.min(k, a.length))).sort((x, y) => x - y);
  const same = sortedOf(latSame, nSame), cross = sortedOf(latCross, nCross);
  const n = Math.min(received, lat.length);
  const sorted = Array.from(lat.subarray(0, n)).sort((a, b) => a - b);
  if (!warmup) emit({
    event: "phase", phase: pi, rate, duration: sendSeconds, sent, received,
    lost: sent - received, wrong_dst: wrongDst, errors,
    msgs_per_s: (rate > 0 ? received : receivedInWindow) / sendSeconds,
    p50_ms: quantile(sorted, 0.5), p99_ms: quantile(sorted, 0.99), max_ms: sorted[n - 1],
    cpu_s: cpu, cpu_us_per_relay: (cpu * 1e6) / Math.max(1, received),
    rss_kib: rssKiB(), lost_sockets: lostSockets,
    generator_cpu_s: selfCpuSeconds() - self0, other_cpu_s: otherCpu,
    cpu_s_per_pid: perPid, sys_s_per_pid: sysPid, generator_sys_s: generatorSys, wakeups, preempted, aux_cpu_s: aux,
    p50_same_ms: quantile(same, 0.5), p99_same_ms: quantile(same, 0.99),
    p50_cross_ms: quantile(cross, 0.5), p99_cross_ms: quantile(cross, 0.99),
  });
  await sleep(500);
}

closing = true;
for (const ws of sockets) ws.terminate();
process.exit(0);
