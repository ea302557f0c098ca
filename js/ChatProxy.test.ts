import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from "vitest";
import type { Peer, PeerOptions } from "peerjs";
import { ChatProxy, type ChatProxyOptions } from "./ChatProxy";
import type { PageInfo } from "./jupyterPage";
import { CHUNK_THRESHOLD_BYTES } from "./core/chunking";
import { DIAL_TIMEOUT_MS } from "./core/mesh";
import type { SessionConfig } from "./core/session";
import { b64encode, certBytes, generateKey, publicKey } from "./core/signing";
import { normalizeIdentity } from "./core/msglog";
import type { ChatMessage, Identity, Presence } from "./protocol";

type Handler = (...args: any[]) => void;

class Emitter {
  private handlers = new Map<string, Handler[]>();
  on(event: string, handler: Handler): this {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), handler]);
    return this;
  }
  emit(event: string, ...args: unknown[]): void {
    for (const handler of this.handlers.get(event) ?? []) handler(...args);
  }
}

class FakeConn extends Emitter {
  sent: any[] = [];
  closed = false;
  constructor(
    readonly peer: string,
    readonly options: unknown = {},
  ) {
    super();
  }
  send(data: unknown): void {
    this.sent.push(JSON.parse(JSON.stringify(data)));
  }
  close(): void {
    this.closed = true;
  }
  frames(type: string): any[] {
    return this.sent.filter((f) => f.type === type);
  }
}

class FakePeer extends Emitter {
  id = "";
  disconnected = true;
  destroyed = false;
  dialed: FakeConn[] = [];
  reconnects = 0;
  constructor(readonly options: PeerOptions) {
    super();
  }
  open(id: string): void {
    this.id = id;
    this.disconnected = false;
    this.emit("open", id);
  }
  connect(peerId: string, options: unknown): FakeConn {
    const conn = new FakeConn(peerId, options);
    this.dialed.push(conn);
    return conn;
  }
  reconnect(): void {
    this.reconnects += 1;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

class FakeSocket {
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  constructor(readonly url: string) {}
  push(frame: unknown): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  close(): void {}
}

/** The real setTimeout, for waiting on WebCrypto in tests that fake the timers. */
const realSetTimeout = globalThis.setTimeout;

function identity(name: string): Identity {
  return { username: name, name, display_name: name.toUpperCase(), initials: null, color: null, avatar_url: null };
}

const me = identity("me");
const session: SessionConfig = {
  room: "notebooks/a b.ipynb",
  key: "notebooks-a-b-ipynb-0123456789abcdef",
  path: "/base%20url/nbchat/",
  ice_servers: [{ urls: "stun:stun.internal:3478" }],
  ice_transport_policy: "all",
  user: me,
  ping_interval: 5000,
  alive_timeout: 60000,
  max_message_bytes: 65536,
  version: "0.1.0",
};
const page: PageInfo = {
  baseUrl: "/base%20url/",
  wsOrigin: "ws://127.0.0.1:8888",
  xsrfToken: "xsrf-token",
  secure: false,
  hostname: "127.0.0.1",
  port: 8888,
};

interface Harness {
  proxy: ChatProxy;
  fetch: ReturnType<typeof vi.fn>;
  peers: FakePeer[];
  sockets: FakeSocket[];
}

async function start(
  selfId = "0-self",
  extra: Partial<ChatProxyOptions> = {},
  served: SessionConfig = session,
  /** A signed room's server: its certificate for our peer id and public key. */
  certify: ((peerId: string, key: string) => Promise<unknown>) | null = null,
): Promise<Harness> {
  const peers: FakePeer[] = [];
  const sockets: FakeSocket[] = [];
  const fetch = vi.fn(async (url: string) => {
    if (url.endsWith("/id")) return new Response(selfId, { status: 200 });
    if (certify !== null && url.includes("/cert?")) {
      const query = new URLSearchParams(url.slice(url.indexOf("?") + 1));
      return new Response(JSON.stringify(await certify(query.get("id") ?? "", query.get("pk") ?? "")), { status: 200 });
    }
    return new Response(JSON.stringify(served), { status: 200 });
  });
  const proxy = new ChatProxy({
    ...extra,
    room: session.room,
    page,
    fetch: fetch as unknown as typeof globalThis.fetch,
    storage: null,
    createPeer: (options) => {
      const peer = new FakePeer(options);
      peers.push(peer);
      return peer as unknown as Peer;
    },
    createSocket: (url) => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket as unknown as WebSocket;
    },
  });
  proxy.start();
  // A signed room certifies our key first: WebCrypto, which fake timers do not drive.
  for (let i = 0; peers.length === 0 && i < 2_000; i += 1) {
    await vi.advanceTimersByTimeAsync(1);
    if (certify !== null) await new Promise((resolve) => realSetTimeout(resolve, 1));
  }
  peers[0].open(selfId);
  await vi.advanceTimersByTimeAsync(20);
  return { proxy, fetch, peers, sockets };
}

function presence(peerId: string, name: string): Presence {
  return { peer_id: peerId, user: identity(name) };
}

function openConn(conn: FakeConn): void {
  conn.emit("open");
}

/** `start(...args)`, then bob (b-2) in the roster and our link to him open. */
async function startWithBob(...args: Parameters<typeof start>): Promise<Harness & { conn: FakeConn }> {
  const harness = await start(...args);
  harness.sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("b-2", "bob")] });
  const conn = harness.peers[0].dialed[0];
  openConn(conn);
  await vi.advanceTimersByTimeAsync(20);
  return { ...harness, conn };
}

describe("ChatProxy", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("asks the server for the session and configures peerjs with it, never the defaults", async () => {
    const { fetch, peers, sockets } = await start();
    expect(fetch).toHaveBeenCalledWith("/base%20url/nbchat/session?room=notebooks%2Fa%20b.ipynb", {
      credentials: "same-origin",
      headers: { "X-XSRFToken": "xsrf-token" },
    });
    expect(peers[0].options).toMatchObject({
      host: "127.0.0.1",
      port: 8888,
      path: "/base%20url/nbchat/",
      key: session.key,
      secure: false,
      config: { iceServers: session.ice_servers, iceTransportPolicy: "all" },
    });
    expect(sockets[0].url).toBe(`ws://127.0.0.1:8888/base%20url/nbchat/presence?key=${session.key}`);
  });

  it("fetches its peer id itself with the XSRF token and hands it to peerjs (a hub refuses peerjs's own fetch)", async () => {
    const ids: string[] = [];
    const { fetch } = await start("0-self");
    expect(fetch).toHaveBeenCalledWith(`/base%20url/nbchat/${session.key}/id`, {
      credentials: "same-origin",
      headers: { "X-XSRFToken": "xsrf-token" },
    });
    const proxy = new ChatProxy({
      room: session.room,
      page,
      storage: null,
      fetch: (async (url: string) => new Response(url.endsWith("/id") ? "m-given\n" : JSON.stringify(session))) as typeof globalThis.fetch,
      createPeer: (options, id) => {
        ids.push(id);
        return new FakePeer(options) as unknown as Peer;
      },
      createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
    });
    proxy.start();
    await vi.advanceTimersByTimeAsync(1);
    expect(ids).toEqual(["m-given"]);
    proxy.destroy();
  });

  it("says in words why the server refused, and what to do", async () => {
    const proxy = new ChatProxy({
      room: session.room,
      page,
      storage: null,
      fetch: (async (url: string) =>
        url.endsWith("/id")
          ? new Response(JSON.stringify({ message: "Authentication required" }), { status: 403, statusText: "Forbidden" })
          : new Response(JSON.stringify(session))) as typeof globalThis.fetch,
      createPeer: () => {
        throw new Error("no peer without an id");
      },
      createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
    });
    proxy.start();
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.status).toMatch(
      /^Offline — the Jupyter server refused the chat's request \(403\): Authentication required — reload the page; if that does not help, log in to Jupyter again; retrying in \d+ s$/,
    );
    expect(proxy.state.status).not.toContain("server-error");
    proxy.destroy();
  });

  it("asks for relay-only ICE when the call or the server says so, and says it cannot work without TURN", async () => {
    const byCall = await start("0-self", { relayOnly: true });
    expect(byCall.peers[0].options.config).toEqual({ iceServers: session.ice_servers, iceTransportPolicy: "relay" });
    expect(byCall.proxy.state.notice).toMatch(/^No connection is possible: relay-only connections need a TURN relay/);
    const byServer = await start("0-self", {}, { ...session, ice_transport_policy: "relay" });
    expect(byServer.peers[0].options.config?.iceTransportPolicy).toBe("relay");
  });

  it("probes a configured TURN relay once and shows why it fails", async () => {
    const turn = { ...session, ice_servers: [{ urls: "turn:turn.internal:3478", username: "1:me", credential: "c" }] };
    const createPeerConnection = vi.fn((config: RTCConfiguration) => {
      const listeners: Record<string, (event: object) => void> = {};
      return {
        config,
        addEventListener: (type: string, l: (event: object) => void) => (listeners[type] = l),
        createDataChannel: () => ({}),
        setLocalDescription: async () => listeners.icecandidateerror({ errorCode: 401, errorText: "Unauthorized" }),
        close: () => {},
      } as unknown as RTCPeerConnection;
    });
    const { proxy } = await start("0-self", { createPeerConnection }, turn);
    await vi.advanceTimersByTimeAsync(20);
    expect(createPeerConnection).toHaveBeenCalledTimes(1);
    expect(proxy.state.notice).toBe("Only direct connections will work: the TURN relay refused our credentials (401 Unauthorized).");
  });

  it("dials everyone in the roster reliably as JSON and syncs history on open", async () => {
    const { proxy, peers, sockets } = await start("0-self");
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("a-1", "ann"), presence("z-9", "zed")] });
    await vi.advanceTimersByTimeAsync(20);
    expect(peers[0].dialed.map((c) => [c.peer, c.options])).toEqual([
      ["a-1", { reliable: true, serialization: "json" }],
      ["z-9", { reliable: true, serialization: "json" }],
    ]);
    expect(proxy.state.status).toBe("Connected to 0 peers");
    for (const conn of peers[0].dialed) openConn(conn);
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.status).toBe("Connected to 2 peers");
    expect(peers[0].dialed[0].frames("sync")).toEqual([{ type: "sync", have: {} }]);
    expect(proxy.state.users.map((u) => u.peer_id)).toEqual(["0-self", "a-1", "z-9"]);
  });

  it("dials the newcomers with a bigger id and takes the call of those with a smaller one", async () => {
    const { proxy, peers, sockets } = await start("m-self");
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("m-self", "me")] });
    sockets[0].push({ type: "USER_CONNECTED", key: session.key, peer: presence("n-1", "newcomer") });
    sockets[0].push({ type: "USER_CONNECTED", key: session.key, peer: presence("b-1", "early bird") });
    await vi.advanceTimersByTimeAsync(20);
    expect(peers[0].dialed.map((c) => c.peer)).toEqual(["n-1"]);
    const incoming = new FakeConn("b-1");
    peers[0].emit("connection", incoming);
    expect(incoming.closed).toBe(false);
    openConn(incoming);
    openConn(peers[0].dialed[0]);
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.status).toBe("Connected to 2 peers");
    expect(peers[0].dialed.length).toBe(1);
  });

  it("stamps direct messages with the sender's server-bound identity", async () => {
    const { proxy, peers, sockets } = await start();
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("b-2", "bob")] });
    const conn = peers[0].dialed[0];
    openConn(conn);
    conn.emit("data", {
      type: "message",
      message: { id: "x:1", author: "victim", seq: 1, clock: 1, time: 5, text: "hi", user: identity("admin") },
    });
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.messages).toMatchObject([{ id: "b-2:1", author: "b-2", user: { username: "bob" }, text: "hi" }]);
  });

  it("renders a message that arrives in the same task, with no timer, and our own at once", async () => {
    const { proxy, conn } = await startWithBob();
    const seen: number[] = [];
    proxy.subscribe((state) => seen.push(state.messages.length));
    conn.emit("data", { type: "message", message: { seq: 1, clock: 1, time: 5, text: "hi", user: identity("bob") } });
    await Promise.resolve(); // a microtask, not a timer: no fake time passes
    expect(proxy.state.messages.map((m) => m.text)).toEqual(["hi"]);
    // Our own message is in the state before send() returns its microtask turn.
    proxy.send("mine");
    await Promise.resolve();
    expect(proxy.state.messages.map((m) => m.text)).toEqual(["hi", "mine"]);
    expect(seen[seen.length - 1]).toBe(2);
  });

  it("renders a burst of frames once per frame, not once per frame received", async () => {
    const { proxy, conn } = await startWithBob();
    let renders = 0;
    proxy.subscribe(() => (renders += 1));
    renders = 0;
    for (let seq = 1; seq <= 50; seq += 1) {
      conn.emit("data", { type: "message", message: { seq, clock: seq, time: 5, text: `m${seq}`, user: identity("bob") } });
      await Promise.resolve();
    }
    // The first renders at once; the rest of the burst is coalesced (no rAF in node: a timeout).
    expect(renders).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(renders).toBe(2);
    expect(proxy.state.messages).toHaveLength(50);
  });


  it("renders a message at once right after a typing render (no frame wait), and sends typing off after it", async () => {
    const { proxy, conn } = await startWithBob();
    // Bob stops typing, and his message follows within the same millisecond.
    conn.emit("data", { type: "typing", on: true });
    await Promise.resolve();
    expect(proxy.state.typing).toBe("BOB is typing…");
    conn.emit("data", { type: "typing", on: false });
    conn.emit("data", { type: "message", message: { seq: 1, clock: 1, time: 5, text: "hi", user: identity("bob") } });
    await Promise.resolve(); // a microtask: no timer or animation frame ran
    expect(proxy.state.messages.map((m) => m.text)).toEqual(["hi"]);
    expect(proxy.state.typing).toBe("");
    // Ours: the message goes on the link first, "stopped typing" after it.
    proxy.setTyping(true);
    proxy.send("mine");
    const sent = conn.sent.map((f) => (f as { type: string }).type).filter((t) => t === "message" || t === "typing");
    expect(sent.slice(-3)).toEqual(["typing", "message", "typing"]);
  });
  it("renders nothing for a typing refresh, nor for 'stopped typing' after the message", async () => {
    const { proxy, conn } = await startWithBob();
    let renders = 0;
    proxy.subscribe(() => (renders += 1));
    renders = 0;
    conn.emit("data", { type: "typing", on: true });
    await vi.advanceTimersByTimeAsync(20);
    expect([renders, proxy.state.typing]).toEqual([1, "BOB is typing…"]);
    conn.emit("data", { type: "typing", on: true }); // his refresh, every few seconds
    await vi.advanceTimersByTimeAsync(20);
    expect(renders).toBe(1);
    conn.emit("data", { type: "message", message: { seq: 1, clock: 1, time: 5, text: "hi", user: identity("bob") } });
    await vi.advanceTimersByTimeAsync(20);
    expect([renders, proxy.state.typing]).toEqual([2, ""]);
    conn.emit("data", { type: "typing", on: false });
    await vi.advanceTimersByTimeAsync(20);
    expect(renders).toBe(2);
  });
  it("throttles a flooding peer per connection, warns, and still shows everyone else", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const { proxy, peers, sockets } = await start();
      sockets[0].push({
        type: "ROSTER",
        key: session.key,
        peers: [presence("0-self", "me"), presence("b-2", "bob"), presence("f-1", "flood")],
      });
      const [bob, flood] = peers[0].dialed;
      openConn(bob);
      openConn(flood);
      for (let seq = 1; seq <= 5_000; seq += 1) {
        flood.emit("data", { type: "message", message: { seq, clock: seq, time: 1, text: `spam ${seq}`, user: {} } });
      }
      bob.emit("data", { type: "message", message: { seq: 1, clock: 6_000, time: 2, text: "real", user: {} } });
      await vi.advanceTimersByTimeAsync(20);
      const spam = proxy.state.messages.filter((m) => m.author === "f-1").length;
      expect(spam).toBeGreaterThan(0);
      expect(spam).toBeLessThan(400); // the burst, plus whatever refilled meanwhile
      expect(proxy.state.messages.filter((m) => m.author === "b-2").map((m) => m.text)).toEqual(["real"]);
      const floods = warn.mock.calls.filter(([line]) => String(line).includes("f-1") && String(line).includes("flooding"));
      expect(floods.length).toBe(1); // one warning, not one per dropped frame
    } finally {
      warn.mockRestore();
    }
  });

  it("survives payloads peerjs itself cannot parse, and keeps the link", async () => {
    /** Parses as peerjs 1.5's json DataConnection does, throwing where it throws. */
    class PeerjsLikeConn extends FakeConn {
      _handleDataMessage({ data }: { data: unknown }): void {
        const value = JSON.parse(new TextDecoder().decode(data as Uint8Array));
        if (value["__peerData"]?.type === "close") return this.close();
        this.emit("data", value);
      }
      /** What the channel's "message" listener does: look the handler up at call time. */
      receive(data: unknown): void {
        this._handleDataMessage({ data });
      }
    }
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const { proxy, peers, sockets } = await start("z-self");
      sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("z-self", "me")] });
      sockets[0].push({ type: "USER_CONNECTED", key: session.key, peer: presence("h-1", "hostile") });
      const conn = new PeerjsLikeConn("h-1");
      peers[0].emit("connection", conn);
      openConn(conn);
      const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
      for (const junk of [bytes("not json"), bytes("null"), new Uint8Array([0xff, 0xfe]), "a text frame"]) {
        expect(() => conn.receive(junk)).not.toThrow();
      }
      conn.receive(bytes(JSON.stringify({ type: "message", message: { seq: 1, clock: 1, time: 1, text: "fine", user: {} } })));
      await vi.advanceTimersByTimeAsync(20);
      expect(proxy.state.messages.map((m) => m.text)).toEqual(["fine"]);
      expect(conn.closed).toBe(false);
      expect(warn.mock.calls.filter(([line]) => String(line).includes("malformed frame from h-1")).length).toBe(4);
    } finally {
      warn.mockRestore();
    }
  });

  it("answers a peer's syncs at most once per interval, so a sync loop cannot make it resend its history", async () => {
    const { proxy, peers, sockets } = await start();
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("s-1", "syncer")] });
    const conn = peers[0].dialed[0];
    openConn(conn);
    for (let i = 0; i < 20; i += 1) proxy.send(`mine ${i}`);
    conn.sent = [];
    for (let i = 0; i < 1_000; i += 1) conn.emit("data", { type: "sync", have: {} });
    await vi.advanceTimersByTimeAsync(20);
    expect(conn.frames("history").length).toBe(1); // the first, at once
    await vi.advanceTimersByTimeAsync(2_000);
    expect(conn.frames("history").length).toBe(2); // then the latest one that waited
    expect(conn.frames("history")[1].messages.length).toBe(20);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(conn.frames("history").length).toBe(2);
  });

  it("holds frames from a caller presence has not announced yet", async () => {
    const { proxy, peers, sockets } = await start();
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me")] });
    const incoming = new FakeConn("q-7");
    peers[0].emit("connection", incoming);
    openConn(incoming);
    incoming.emit("data", { type: "message", message: { seq: 1, clock: 1, time: 1, text: "early", user: {} } });
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.messages).toEqual([]);
    sockets[0].push({ type: "USER_CONNECTED", key: session.key, peer: presence("q-7", "quinn") });
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.messages).toMatchObject([{ text: "early", user: { username: "quinn" } }]);
  });

  it("resolves a double dial the same way on both sides: the smaller id's call wins", async () => {
    const small = await start("a-small");
    small.sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("a-small", "me"), presence("z-big", "zed")] });
    const ours = small.peers[0].dialed[0];
    const theirs = new FakeConn("z-big");
    small.peers[0].emit("connection", theirs);
    expect(theirs.closed).toBe(true);
    expect(ours.closed).toBe(false);

    const big = await start("z-big");
    big.sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("a-small", "ann"), presence("z-big", "me")] });
    expect(big.peers[0].dialed).toEqual([]); // the smaller id dials
    // A call that never opens is dialed again from either side: both may now dial at once.
    big.peers[0].emit("connection", new FakeConn("a-small"));
    await vi.advanceTimersByTimeAsync(DIAL_TIMEOUT_MS + 600);
    const bigOurs = big.peers[0].dialed[0];
    expect(bigOurs.peer).toBe("a-small");
    const bigTheirs = new FakeConn("a-small");
    big.peers[0].emit("connection", bigTheirs);
    expect(bigOurs.closed).toBe(true);
    expect(bigTheirs.closed).toBe(false);
  });

  it("answers sync with history batches that each fit a data-channel frame, minus the asker's own", async () => {
    const { proxy, peers, sockets } = await start();
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("b-2", "bob")] });
    const conn = peers[0].dialed[0];
    openConn(conn);
    for (let i = 0; i < 200; i += 1) proxy.send(`message ${i} ${"x".repeat(200)}`);
    conn.emit("data", { type: "message", message: { seq: 1, clock: 999, time: 1, text: "bob's", user: {} } });
    conn.sent = [];
    conn.emit("data", { type: "sync", have: {} });
    // Newest first: the newest batch goes at once, the rest once the event loop turns.
    const first = conn.frames("history");
    expect(first).toHaveLength(1);
    expect(first[0].messages[first[0].messages.length - 1].text).toMatch(/^message 199 /);
    await vi.advanceTimersByTimeAsync(1);
    const batches = conn.frames("history");
    expect(batches.length).toBeGreaterThan(1);
    for (const batch of batches) expect(new TextEncoder().encode(JSON.stringify(batch)).length).toBeLessThan(CHUNK_THRESHOLD_BYTES);
    const ids = batches.flatMap((b) => b.messages.map((m: { id: string }) => m.id));
    expect(ids.length).toBe(200);
    expect(new Set(ids).size).toBe(200);
    expect(ids).not.toContain("b-2:1");
  });

  it("keeps a history answer in the local copy only once its batches stop arriving, all of it", async () => {
    const { IDBFactory, IDBKeyRange } = await import("fake-indexeddb");
    const { LocalCopy } = await import("./storage");
    vi.stubGlobal("IDBKeyRange", IDBKeyRange);
    onTestFinished(() => void vi.unstubAllGlobals());
    const factory = new IDBFactory();
    const stored = async (): Promise<number> => {
      const read = new LocalCopy(`${page.baseUrl}|${session.room}`, { indexedDB: factory, legacy: null }).loadAll();
      await vi.advanceTimersByTimeAsync(0);
      return (await read).length;
    };
    const { proxy, peers, sockets } = await start("0-self", { indexedDB: factory });
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("b-2", "bob"), presence("c-3", "cat")] });
    const conn = peers[0].dialed[0];
    openConn(conn);
    // Bob's answer: 30 batches of 50 relayed entries of cat's, one every 80 ms (2.4 s).
    for (let b = 0; b < 30; b += 1) {
      const messages = Array.from({ length: 50 }, (_, i) => {
        const seq = b * 50 + i + 1;
        return { id: `c-3:${seq}`, author: "c-3", seq, clock: seq, time: 1, text: `m${seq}`, user: identity("cat") };
      });
      conn.emit("data", { type: "history", messages });
      await vi.advanceTimersByTimeAsync(80);
      expect(await stored()).toBe(0);
    }
    expect(proxy.state.messages).toHaveLength(1_500);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(await stored()).toBe(1_500);
    expect(proxy.state.localCopy?.messages).toBe(1_500);
  });

  it("keeps a newest-first catch-up without folding the conversation once per batch (a room never off the record)", async () => {
    const { Conversation } = await import("./chatState");
    const { proxy, conn } = await startWithBob();
    const update = vi.spyOn(Conversation.prototype, "update");
    onTestFinished(() => update.mockRestore());
    // 40 batches of 25, the newest first: each goes before everything held.
    for (let b = 39; b >= 0; b -= 1) {
      const messages = Array.from({ length: 25 }, (_, i) => {
        const seq = b * 25 + i + 1;
        return { id: `b-2:${seq}`, author: "b-2", seq, clock: seq, time: 1, text: `m${seq}`, user: identity("bob") };
      });
      conn.emit("data", { type: "history", messages });
    }
    await vi.advanceTimersByTimeAsync(100);
    expect(proxy.state.messages).toHaveLength(1_000);
    expect(proxy.state.messages[0].text).toBe("m1");
    // The renders fold it (a few), not every batch kept (40: each a whole rebuild).
    expect(update.mock.calls.length).toBeLessThan(10);
  });

  it("sends a long sync answer newest first, paced on the link's buffer, and a live message goes ahead of the rest", async () => {
    const { proxy, peers, sockets } = await start();
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("b-2", "bob")] });
    const conn = peers[0].dialed[0];
    // A data channel whose buffer we control: full until we say it drained.
    const listeners: (() => void)[] = [];
    const channel = {
      bufferedAmount: 1_000_000,
      bufferedAmountLowThreshold: 0,
      addEventListener: (_type: string, l: () => void) => listeners.push(l),
      removeEventListener: () => undefined,
    };
    (conn as unknown as { dataChannel: typeof channel }).dataChannel = channel;
    openConn(conn);
    for (let i = 0; i < 300; i += 1) proxy.send(`message ${i} ${"x".repeat(200)}`);
    conn.sent = [];
    conn.emit("data", { type: "sync", have: {} });
    await vi.advanceTimersByTimeAsync(1);
    // Only the newest batch left while the buffer is full.
    expect(conn.frames("history")).toHaveLength(1);
    expect(conn.frames("history")[0].messages[conn.frames("history")[0].messages.length - 1].text).toMatch(/^message 299 /);
    proxy.send("live");
    expect(conn.sent[conn.sent.length - 1]).toMatchObject({ type: "message", message: { text: "live" } });
    // The link drains: the rest follows, oldest last, and everything arrived once.
    channel.bufferedAmount = 0;
    for (const l of listeners.splice(0)) l();
    await vi.advanceTimersByTimeAsync(1);
    const batches = conn.frames("history");
    expect(batches.length).toBeGreaterThan(2);
    expect(batches[batches.length - 1].messages[0].text).toMatch(/^message 0 /);
    const ids = batches.flatMap((b) => b.messages.map((m: { id: string }) => m.id));
    expect(new Set(ids).size).toBe(300);
  });

  it("chunks a message too big for one frame", async () => {
    const { proxy, peers, sockets } = await start();
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("b-2", "bob")] });
    const conn = peers[0].dialed[0];
    openConn(conn);
    proxy.send("y".repeat(40_000));
    const chunks = conn.frames("chunk");
    expect(chunks.length).toBe(3);
    expect(JSON.parse(chunks.map((c) => c.data).join("")).message.text.length).toBe(40_000);
  });

  it("goes offline with the reason when the server is lost, and reconnects with backoff", async () => {
    const { proxy, peers } = await start();
    peers[0].disconnected = true;
    peers[0].emit("disconnected", "0-self");
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.phase).toBe("offline");
    expect(proxy.state.status).toMatch(/^Offline — lost connection to the Jupyter server; retrying in \d+ s$/);
    expect(proxy.state.cannotSend).toMatch(/^Offline — /);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(peers[0].reconnects).toBe(1);
    peers[0].open("0-self");
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.status).toBe("Connected to 0 peers");
    expect(proxy.state.cannotSend).toBeNull();
  });

  it("calls peers it lost during an outage once signaling is back", async () => {
    const { proxy, peers, sockets } = await start("a-self");
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("b-2", "bob"), presence("a-self", "me")] });
    const first = peers[0].dialed[0];
    openConn(first);
    peers[0].disconnected = true;
    peers[0].emit("disconnected", "a-self");
    first.emit("close");
    await vi.advanceTimersByTimeAsync(1_000);
    peers[0].open("a-self");
    await vi.advanceTimersByTimeAsync(20);
    expect(peers[0].dialed.map((c) => c.peer)).toEqual(["b-2", "b-2"]);
    openConn(peers[0].dialed[1]);
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.status).toBe("Connected to 1 peer");
  });

  it("keeps chatting over open links while the server is unreachable", async () => {
    const { proxy, peers, sockets } = await start();
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("b-2", "bob")] });
    openConn(peers[0].dialed[0]);
    peers[0].disconnected = true;
    peers[0].emit("disconnected", "0-self");
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.phase).toBe("online");
    expect(proxy.state.status).toMatch(/^Connected to 1 peer — server unreachable/);
    expect(proxy.state.cannotSend).toBeNull();
  });

  it("after a long outage, the first socket back makes the other retry at once", async () => {
    const { peers, sockets } = await start();
    // The server stays down: every retry fails, so both backoffs grow to 15-30 s.
    for (let i = 0; i < 6; i += 1) {
      peers[0].disconnected = true;
      peers[0].emit("disconnected", "0-self");
      sockets[sockets.length - 1].onclose?.({ code: 1006, reason: "" });
      await vi.advanceTimersByTimeAsync(32_000);
    }
    peers[0].disconnected = true;
    peers[0].emit("disconnected", "0-self");
    sockets[sockets.length - 1].onclose?.({ code: 1006, reason: "" });
    const reconnects = peers[0].reconnects;
    const opened = sockets.length;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(peers[0].reconnects).toBe(reconnects);
    expect(sockets.length).toBe(opened);
    // The server is back and signaling gets there first: presence follows at once ...
    peers[0].open("0-self");
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets.length).toBe(opened + 1);
    // ... and when presence gets there first, signaling follows at once.
    peers[0].disconnected = true;
    peers[0].emit("disconnected", "0-self");
    await vi.advanceTimersByTimeAsync(1);
    sockets[sockets.length - 1].push({ type: "ROSTER", key: session.key, peers: [] });
    await vi.advanceTimersByTimeAsync(1);
    expect(peers[0].reconnects).toBe(reconnects + 1);
  });

  it("starts over with a new id when the server refuses ours", async () => {
    const { proxy, peers } = await start("0-self");
    peers[0].emit("error", Object.assign(new Error("ID taken"), { type: "unavailable-id" }));
    expect(peers[0].destroyed).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(peers.length).toBe(2);
    peers[1].open("m-new");
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.selfId).toBe("m-new");
  });

  it("dials again, whichever id is smaller, when a link stays ICE-disconnected (a silent path)", async () => {
    const { proxy, peers, sockets } = await start("z-self");
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("b-2", "bob"), presence("z-self", "me")] });
    expect(peers[0].dialed).toEqual([]); // b-2, the smaller id, dials
    const conn = new FakeConn("b-2");
    peers[0].emit("connection", conn);
    openConn(conn);
    // A blip that recovers keeps the link.
    conn.emit("iceStateChanged", "disconnected");
    await vi.advanceTimersByTimeAsync(2_000);
    conn.emit("iceStateChanged", "connected");
    await vi.advanceTimersByTimeAsync(5_000);
    expect(conn.closed).toBe(false);
    // Silence that lasts: dropped and dialed again, though z-self is the larger id.
    conn.emit("iceStateChanged", "disconnected");
    await vi.advanceTimersByTimeAsync(3_000);
    expect(conn.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.status).toBe("Connected to 0 peers");
    await vi.advanceTimersByTimeAsync(600);
    expect(peers[0].dialed.map((c) => c.peer)).toEqual(["b-2"]);
  });

  it("keeps an open link to a peer a later roster leaves out (a restarted server lists only who is back)", async () => {
    const { proxy, peers, sockets } = await start();
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("b-2", "bob"), presence("c-3", "cy")] });
    const [bob, cy] = peers[0].dialed;
    openConn(bob);
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me")] });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(bob.closed).toBe(false); // open: kept, whatever the wait
    expect(cy.closed).toBe(true); // never opened: nothing to keep
    expect(proxy.state.status).toBe("Connected to 1 peer");
    sockets[0].push({ type: "USER_CONNECTED", key: session.key, peer: presence("b-2", "bob") });
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.users.map((u) => u.peer_id)).toEqual(["0-self", "b-2"]);
    expect(peers[0].dialed.length).toBe(2); // no redial: the link it had is the link it has
  });

  it("forgets who left and drops the link", async () => {
    const { proxy, peers, sockets } = await start();
    sockets[0].push({ type: "ROSTER", key: session.key, peers: [presence("0-self", "me"), presence("b-2", "bob")] });
    const conn = peers[0].dialed[0];
    openConn(conn);
    sockets[0].push({ type: "USER_DISCONNECTED", key: session.key, peer: presence("b-2", "bob") });
    await vi.advanceTimersByTimeAsync(20);
    expect(conn.closed).toBe(true);
    expect(proxy.state.users.map((u) => u.peer_id)).toEqual(["0-self"]);
    expect(proxy.state.status).toBe("Connected to 0 peers");
  });

  it("queues what the kernel sends before we have an id", async () => {
    const peers: FakePeer[] = [];
    const proxy = new ChatProxy({
      room: "r",
      page,
      storage: null,
      fetch: (async (url: string) =>
        new Response(url.endsWith("/id") ? "0-self" : JSON.stringify(session))) as typeof fetch,
      createPeer: (options) => {
        peers.push(new FakePeer(options));
        return peers[peers.length - 1] as unknown as Peer;
      },
      createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
    });
    proxy.start();
    expect(proxy.send("from the kernel")).toBeNull();
    expect(proxy.state.cannotSend).toBe("Connecting to the chat…");
    await vi.advanceTimersByTimeAsync(1);
    peers[0].open("0-self");
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.messages).toMatchObject([{ id: "0-self:1", text: "from the kernel" }]);
  });
});

describe("ChatProxy chat features (#12)", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("replies, edits, deletes and reacts through the same publish path, and shows only messages", async () => {
    const { proxy, conn } = await startWithBob();
    conn.emit("data", { type: "message", message: { seq: 1, clock: 1, time: 5, text: "question?\nmore", user: identity("bob") } });
    await vi.advanceTimersByTimeAsync(20);
    const mine = proxy.send("first") as { id: string };
    const reply = proxy.reply("b-2:1", "answer");
    proxy.edit(reply.id, "better answer");
    proxy.react("b-2:1", "👍");
    proxy.remove(mine.id);
    await vi.advanceTimersByTimeAsync(20);
    const sent = conn.frames("message").map((f) => f.message);
    expect(sent.map((m) => [m.kind ?? null, m.target ?? m.reply_to ?? null])).toEqual([
      [null, null],
      [null, "b-2:1"],
      ["edit", reply.id],
      ["react", "b-2:1"],
      ["delete", mine.id],
    ]);
    expect(sent[3]).toMatchObject({ emoji: "👍", on: true });
    const shown = proxy.state.messages;
    expect(shown.map((m) => [m.id, m.text, m.edited != null, m.deleted === true])).toEqual([
      ["b-2:1", "question?\nmore", false, false],
      [mine.id, "", false, true],
      [reply.id, "better answer", true, false],
    ]);
    expect(shown[0].reactions).toEqual([{ emoji: "👍", users: ["me"] }]);
    expect(shown[2].quote).toEqual({ id: "b-2:1", name: "BOB", line: "question?", deleted: false });
    // The raw log (what the kernel copy mirrors) still has every entry.
    expect(proxy.state.entries).toHaveLength(6);
  });

  it("imports an export of its room: new entries shown, held ones skipped, peers get them by sync; another room refused", async () => {
    const { proxy, conn } = await startWithBob();
    conn.emit("data", { type: "message", message: { seq: 1, clock: 1, time: 5, text: "bob's", user: identity("bob") } });
    await vi.advanceTimersByTimeAsync(20);
    const exported = proxy.exportDocument(7);
    expect(exported).toMatchObject({ format: "nbchat-export/1", room: session.room, exported: 7 });
    expect(exported.entries.map((m) => (m as ChatMessage).id)).toEqual(["b-2:1"]);
    const carol = (seq: number, text: string) => ({ id: `c-3:${seq}`, author: "c-3", seq, clock: seq + 1, time: 6, text, user: identity("carol") });
    const file = { ...exported, entries: [...exported.entries, carol(1, "carol, from a file"), carol(2, "again"), { id: "x" }] };
    const result = await proxy.importHistory(JSON.stringify(file));
    expect(result).toEqual({ messages: 2, amendments: 0, held: 1, unverified: 0, invalid: 1 });
    expect(proxy.state.messages.map((m) => m.text)).toEqual(["bob's", "carol, from a file", "again"]);
    expect(conn.frames("history")).toEqual([]); // nothing pushed: sync carries them
    conn.emit("data", { type: "sync", have: { "b-2": 1 } });
    await vi.advanceTimersByTimeAsync(20);
    expect(conn.frames("history").flatMap((f) => f.messages.map((m: ChatMessage) => m.id))).toEqual(["c-3:1", "c-3:2"]);
    await expect(proxy.importHistory(JSON.stringify({ ...file, room: "elsewhere" }))).rejects.toThrow(
      `Not imported: this is the history of room “elsewhere”, not of “${session.room}”.`,
    );
    await expect(proxy.importHistory("not json")).rejects.toThrow("Not imported: the file is not JSON");
  });

  it("refuses to edit or delete another's message, and amendments of unknown ids", async () => {
    const { proxy, conn } = await startWithBob();
    conn.emit("data", { type: "message", message: { seq: 1, clock: 1, time: 5, text: "bob's", user: identity("bob") } });
    await vi.advanceTimersByTimeAsync(20);
    expect(() => proxy.edit("b-2:1", "mine now")).toThrow(/only edit your own/);
    expect(() => proxy.remove("b-2:1")).toThrow(/only delete your own/);
    expect(() => proxy.react("q-1:9", "👍")).toThrow(/no message/);
    expect(conn.frames("message")).toEqual([]);
  });

  it("shows a peer's edit, reaction and delete as the message's current state", async () => {
    const { proxy, conn } = await startWithBob();
    const message = (seq: number, extra: Record<string, unknown>) => ({
      type: "message",
      message: { seq, clock: seq, time: seq, text: "", user: identity("bob"), ...extra },
    });
    conn.emit("data", message(1, { text: "typo" }));
    conn.emit("data", message(2, { text: "typo fixed", kind: "edit", target: "b-2:1" }));
    conn.emit("data", message(3, { kind: "react", target: "b-2:1", emoji: "🎉", on: true }));
    await vi.advanceTimersByTimeAsync(20);
    const before = proxy.state.messages[0];
    expect(before).toMatchObject({ text: "typo fixed", reactions: [{ emoji: "🎉", users: ["bob"] }] });
    expect(before.edited).toBe(2);
    // An unrelated message keeps the row's object: React.memo skips it.
    conn.emit("data", message(4, { text: "another" }));
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.messages[0]).toBe(before);
    conn.emit("data", message(5, { kind: "delete", target: "b-2:1" }));
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.messages.map((m) => [m.text, m.deleted === true])).toEqual([
      ["", true],
      ["another", false],
    ]);
  });

  it("sends typing at most every 2 s and off on send; shows who types until they stop or go quiet", async () => {
    const { proxy, conn } = await startWithBob();
    proxy.setTyping(true);
    proxy.setTyping(true);
    await vi.advanceTimersByTimeAsync(2_100);
    proxy.setTyping(true);
    proxy.send("done");
    expect(conn.frames("typing")).toEqual([
      { type: "typing", on: true },
      { type: "typing", on: true },
      { type: "typing", on: false },
    ]);
    conn.emit("data", { type: "typing", on: true });
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.typing).toBe("BOB is typing…");
    conn.emit("data", { type: "message", message: { seq: 1, clock: 9, time: 5, text: "sent", user: identity("bob") } });
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.typing).toBe("");
    conn.emit("data", { type: "typing", on: true });
    await vi.advanceTimersByTimeAsync(20);
    expect(proxy.state.typing).toBe("BOB is typing…");
    await vi.advanceTimersByTimeAsync(5_100);
    expect(proxy.state.typing).toBe("");
    // Typing is never stored.
    expect(proxy.state.entries.map((m) => m.text)).toEqual(["done", "sent"]);
  });
});

describe("ChatProxy in a signed room", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("puts our typed message on the link before rendering it (the signature is made meanwhile, off this thread)", async () => {
    const server = await generateKey();
    const certify = async (peer: string, key: string): Promise<unknown> => {
      const cert = { room: session.key, peer, user: normalizeIdentity(me) as unknown as Record<string, unknown>, key, sig: "" };
      cert.sig = b64encode(new Uint8Array(await crypto.subtle.sign("Ed25519", server.privateKey, certBytes(cert))));
      return cert;
    };
    const signed = { ...session, server_keys: [await publicKey(server)] };
    const { proxy, conn } = await startWithBob("0-self", {}, signed, certify);
    const onWire = (): boolean =>
      conn.sent.some((f) => (f as { type: string; message?: { text?: string } }).message?.text === "mine");
    const sign = vi.spyOn(crypto.subtle, "sign");
    // What the link held at each render that showed our message.
    const rendered: boolean[] = [];
    proxy.subscribe((state) => {
      if (state.messages.some((m) => m.text === "mine")) rendered.push(onWire());
    });
    proxy.send("mine");
    // The signature started at once, in the same task as Enter.
    expect(sign).toHaveBeenCalledTimes(1);
    for (let i = 0; rendered.length === 0 && i < 2_000; i += 1) {
      await new Promise((resolve) => realSetTimeout(resolve, 1));
      await vi.advanceTimersByTimeAsync(1);
    }
    expect(rendered[0]).toBe(true);
    const frame = conn.sent.find((f) => (f as { message?: { text?: string } }).message?.text === "mine") as {
      message: { sig?: string };
    };
    expect(typeof frame.message.sig).toBe("string");
  });
});
