// All of the widget's networking: session config, peerjs signaling, presence, the data-channel
// mesh and history sync. React components only subscribe to its state and call send().

import { type DataConnection, Peer, type PeerError, type PeerOptions } from "peerjs";
import { backoffDelay } from "./backoff";
import { type ChatState, type Phase, chatState } from "./chatState";
import { ChunkAssembler, maxChunkedBytes, split } from "./core/chunking";
import { type ChatFrame, ChatFrameType, InvalidFrame, MAX_MESSAGE_BYTES, parseChatFrame, utf8Length } from "./core/frames";
import { InvalidMessage, MessageLog } from "./core/msglog";
import { IncomingLimits } from "./core/rateLimit";
import { type SessionConfig, parseSessionConfig } from "./core/session";
import { historyBatches } from "./historyBatches";
import { type PageInfo, pageInfo } from "./jupyterPage";
import { PresenceSocket } from "./presenceSocket";
import { type CreatePeerConnection, NO_TURN_SERVER, hasTurnServer, probeTurn } from "./turnProbe";
import type { ChatMessage, Identity, Presence, PresenceFrame } from "./protocol";
import { Sealer } from "./roomKey";
import { type Rejection, sealSignaling } from "./sealedSignaling";
import { LogStore } from "./storage";

export interface ChatProxyOptions {
  room: string;
  /** Use only TURN-relayed ICE candidates (the server's ice_transport_policy may force it). */
  relayOnly?: boolean;
  /** Where Jupyter is; read from the page by default. */
  page?: PageInfo;
  /** Injectable transports (tests use fakes). */
  fetch?: typeof fetch;
  storage?: Storage | null;
  /** Makes the peerjs client; `id` is the one the server issued us (peerjs never fetches one). */
  createPeer?: (options: PeerOptions, id: string) => Peer;
  createSocket?: (url: string) => WebSocket;
  createPeerConnection?: CreatePeerConnection;
  /** The room passphrase (or its promise: the kernel sends it by comm message), or none.
   *  With one, every OFFER/ANSWER/CANDIDATE is sealed end to end (see sealedSignaling.ts). */
  passphrase?: string | Promise<string> | null;
}

/** A data connection and what we know about it. */
interface Link {
  conn: DataConnection;
  open: boolean;
  dialedByUs: boolean;
  assembler: ChunkAssembler;
  /** Per-connection rate limits on what this peer sends us. */
  limits: IncomingLimits;
  /** Frames that arrived before presence told us who the peer is. */
  early: unknown[];
  timer: ReturnType<typeof setTimeout> | null;
  /** Running while ICE reports the path disconnected (no packets from the peer). */
  silentTimer: ReturnType<typeof setTimeout> | null;
  /** Running for SYNC_ANSWER_INTERVAL_MS after we answered a sync; a sync meanwhile waits. */
  syncTimer: ReturnType<typeof setTimeout> | null;
  /** The latest sync that arrived while syncTimer ran, answered when it ends. */
  pendingHave: unknown;
}

const DIAL_TIMEOUT_MS = 20_000;
const ANTI_ENTROPY_MS = 15_000;
const EMIT_DELAY_MS = 16;
const SAVE_DELAY_MS = 1_000;
/** How long the "sending too fast" notice stays after a flooding peer's last dropped frame. */
const FLOOD_NOTICE_MS = 10_000;
const MAX_EARLY_FRAMES = 256;
/**
 * At most one sync answer per connection this often. Honest peers sync on connecting and
 * every ANTI_ENTROPY_MS; a peer sending syncs in a loop would otherwise make us serialize and
 * send the whole history each time.
 */
const SYNC_ANSWER_INTERVAL_MS = 2_000;
/**
 * How long a link may stay ICE-"disconnected" before we call it dead and dial again. Chrome
 * reports "disconnected" a few seconds after packets stop, but "failed" (when peerjs closes
 * the connection) much later or never, so without this a path that went silent kept
 * swallowing messages while the status said "Connected".
 */
const SILENT_LINK_MS = 3_000;

export class ChatProxy {
  private readonly page: PageInfo;
  private readonly fetchFn: typeof fetch;
  private readonly store: LogStore;
  private readonly listeners = new Set<(state: ChatState) => void>();
  private readonly links = new Map<string, Link>();
  private readonly present = new Map<string, Presence>();
  private readonly redialAttempts = new Map<string, number>();
  private readonly redialTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly outbox: string[] = [];
  private session: SessionConfig | null = null;
  private peer: Peer | null = null;
  private presence: PresenceSocket | null = null;
  private log: MessageLog | null = null;
  /** Messages restored from storage before we have a peer id (and thus a log). */
  private stored: unknown[] = [];
  private phase: Phase = "connecting";
  private offlineReason = "";
  private relayProblem: string | null = null;
  private signalingUp = false;
  private rosterKnown = false;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private emitTimer: ReturnType<typeof setTimeout> | null = null;
  /** Peers we drop frames of (they send too fast), until FLOOD_NOTICE_MS after the last. */
  private readonly floods = new Map<string, { dropped: number; until: number }>();
  private floodTimer: ReturnType<typeof setTimeout> | null = null;
  private saveTimer: ReturnType<typeof setTimeout> | null = null;
  private entropyTimer: ReturnType<typeof setInterval> | null = null;
  private chunkCounter = 0;
  private destroyed = false;
  private snapshot: ChatState;
  /** Peers whose signaling failed the passphrase check, until a link with them opens or they leave. */
  private readonly refused = new Map<string, Rejection>();

  constructor(private readonly options: ChatProxyOptions) {
    this.options = { ...options, createPeer: this.sealingPeers(options) };
    this.page = options.page ?? pageInfo();
    this.fetchFn = options.fetch ?? window.fetch.bind(window);
    this.store = new LogStore(`${this.page.baseUrl}|${options.room}`, options.storage);
    this.stored = this.store.load();
    this.snapshot = this.computeState();
  }

  /** Wrap every Peer we create so its signaling is sealed with the room passphrase (or, with
   *  none, so sealed offers from protected peers are refused with a notice, not a peerjs warning). */
  private sealingPeers(options: ChatProxyOptions): (peerOptions: PeerOptions, id: string) => Peer {
    const create = options.createPeer ?? ((peerOptions: PeerOptions, id: string) => new Peer(id, peerOptions));
    const passphrase = options.passphrase ?? null;
    const sealers = new Map<string, Promise<Sealer>>();
    return (peerOptions: PeerOptions, id: string) => {
      const peer = create(peerOptions, id);
      let sealer: Promise<Sealer> | null = null;
      if (passphrase !== null) {
        const key = peerOptions.key ?? "";
        sealer = sealers.get(key) ?? Promise.resolve(passphrase).then((p) => Sealer.forRoom(p, key));
        sealers.set(key, sealer);
      }
      sealSignaling(peer, sealer, (rejection) => this.onRefused(peer, rejection));
      return peer;
    };
  }

  private onRefused(peer: Peer, rejection: Rejection): void {
    if (peer !== this.peer || this.destroyed) return;
    console.warn(
      `nbchat: refused ${rejection.type} from ${rejection.peerId} in room ${this.session?.key}: ${rejection.reason}`,
    );
    this.refused.set(rejection.peerId, rejection);
    // Call back, so the other side learns of the mismatch too (our sealed offer fails there).
    if (rejection.type === "OFFER") this.dial(rejection.peerId);
    this.changed(false);
  }

  get state(): ChatState {
    return this.snapshot;
  }

  subscribe(listener: (state: ChatState) => void): () => void {
    this.listeners.add(listener);
    listener(this.snapshot);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (typeof window !== "undefined") window.addEventListener("online", this.onBrowserOnline);
    void this.connect();
  }

  /** The network (browser "online") or the server (presence is back) is reachable again:
   *  retry now instead of at the end of the backoff. */
  private readonly onBrowserOnline = (): void => {
    if (this.retryTimer === null || this.destroyed) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt = 0;
    this.retryNow();
  };

  /** Post `text` as this browser's peer. Queued until we have a peer id. */
  send(text: string): ChatMessage | null {
    const body = text.trim() === "" ? "" : text;
    if (body === "") return null;
    if (this.log === null) {
      this.outbox.push(body);
      return null;
    }
    const limit = this.session?.max_message_bytes ?? Infinity;
    if (utf8Length(body) > limit) throw new Error(`Message too long: the limit is ${limit} bytes`);
    const message = this.log.compose(body, Date.now());
    for (const link of this.links.values()) {
      if (link.open) this.sendFrame(link, { type: ChatFrameType.MESSAGE, message });
    }
    this.changed(true);
    return message;
  }

  destroy(): void {
    this.destroyed = true;
    if (typeof window !== "undefined") window.removeEventListener("online", this.onBrowserOnline);
    for (const timer of [this.retryTimer, this.emitTimer, this.saveTimer, this.floodTimer]) {
      if (timer !== null) clearTimeout(timer);
    }
    if (this.entropyTimer !== null) clearInterval(this.entropyTimer);
    for (const timer of this.redialTimers.values()) clearTimeout(timer);
    if (this.log !== null) this.store.save(this.log.messages);
    this.presence?.close();
    this.peer?.destroy();
    this.links.clear();
    this.listeners.clear();
  }

  // --- session and signaling ------------------------------------------------------------

  private async connect(): Promise<void> {
    if (this.destroyed) return;
    this.setPhase("connecting");
    let session: SessionConfig;
    let peerId: string;
    try {
      session = parseSessionConfig(
        await this.request(
          `${this.page.baseUrl}nbchat/session?room=${encodeURIComponent(this.options.room)}`,
        ).then((r) => r.json()),
      );
      // We ask for our id ourselves rather than let peerjs do it: its fetch carries no XSRF
      // token, and a JupyterHub single-user server refuses cookie auth on such a request.
      peerId = (await this.request(`${session.path}${encodeURIComponent(session.key)}/id`).then((r) => r.text())).trim();
    } catch (error) {
      this.retryLater(error instanceof RequestRefused ? error.message : `cannot reach the Jupyter server (${describe(error)})`);
      return;
    }
    if (this.destroyed) return;
    this.session = session;
    for (const id of [...this.links.keys()]) this.dropLink(id);
    this.openPeer(session, peerId);
    if (hasTurnServer(session.ice_servers ?? [])) {
      void this.checkRelay(session);
    } else if (this.relayOnly(session)) {
      this.relayProblem = `No connection is possible: ${NO_TURN_SERVER}.`;
      this.changed(false);
    }
  }

  private relayOnly(session: SessionConfig): boolean {
    return this.options.relayOnly === true || session.ice_transport_policy === "relay";
  }

  /** Ask the TURN relay for an address once per session, and say so if it fails us. */
  private async checkRelay(session: SessionConfig): Promise<void> {
    const problem = await probeTurn(session.ice_servers, this.options.createPeerConnection);
    if (this.destroyed || session !== this.session) return;
    if (problem !== null) {
      console.warn(`nbchat: ${problem} (room ${session.key})`);
      this.relayProblem = this.relayOnly(session)
        ? `No connection is possible: ${problem}.`
        : `Only direct connections will work: ${problem}.`;
    } else {
      this.relayProblem = null;
    }
    this.changed(false);
  }

  /** GET from our Jupyter server with what it requires of a script's request (the `_xsrf`
   *  token and the login cookie); a refusal becomes a RequestRefused that says why. */
  private async request(url: string): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.page.xsrfToken !== null) headers["X-XSRFToken"] = this.page.xsrfToken;
    const response = await this.fetchFn(url, { credentials: "same-origin", headers });
    if (response.ok) return response;
    let detail = response.statusText;
    try {
      const body: unknown = await response.json();
      if (typeof body === "object" && body !== null && "message" in body) detail = String(body.message);
    } catch {
      // Not JSON (a proxy's error page): the status line is the best we have.
    }
    throw new RequestRefused(response.status, detail);
  }

  private openPeer(session: SessionConfig, id: string): void {
    // Never peerjs's defaults: they point at the public cloud server and public STUN/TURN.
    const createPeer = this.options.createPeer ?? ((options: PeerOptions, peerId: string) => new Peer(peerId, options));
    const peer = createPeer({
      host: this.page.hostname,
      port: this.page.port,
      path: session.path,
      key: session.key,
      secure: this.page.secure,
      config: {
        iceServers: session.ice_servers,
        iceTransportPolicy: this.relayOnly(session) ? "relay" : "all",
      },
      pingInterval: session.ping_interval,
      debug: 1,
    }, id);
    this.peer = peer;
    peer.on("open", (id) => this.onPeerOpen(peer, id));
    peer.on("connection", (conn) => this.onIncoming(conn));
    peer.on("disconnected", () => this.onSignalingLost(peer, "lost connection to the Jupyter server"));
    peer.on("error", (error) => this.onPeerError(peer, error));
  }

  private onPeerOpen(peer: Peer, id: string): void {
    if (peer !== this.peer || this.session === null) return;
    this.attempt = 0;
    this.signalingUp = true;
    if (this.log === null || this.log.peerId !== id) this.startLog(id, this.session.user);
    if (this.presence === null) {
      const url = `${this.page.wsOrigin}${this.session.path}presence?key=${encodeURIComponent(this.session.key)}`;
      this.presence = new PresenceSocket(
        url,
        {
          onFrame: (frame) => this.onPresence(frame),
          onDown: (reason) => console.warn(`nbchat: presence down in ${this.session?.key}: ${reason}`),
        },
        this.options.createSocket,
      );
      this.presence.open();
    } else {
      // The server is back: the presence socket need not sit out the rest of its backoff.
      this.presence.retryNow();
    }
    if (this.entropyTimer === null) {
      this.entropyTimer = setInterval(() => this.antiEntropy(), ANTI_ENTROPY_MS);
    }
    // Back after an outage: like a newcomer, call everyone we lost meanwhile.
    for (const peerId of this.present.keys()) this.dial(peerId);
    this.setPhase("online");
  }

  private startLog(id: string, user: Identity): void {
    const previous = this.log;
    const log = new MessageLog(id, user);
    log.restore(previous !== null ? previous.messages : this.stored);
    this.stored = [];
    this.log = log;
    for (const text of this.outbox.splice(0)) this.send(text);
    this.changed(false);
  }

  private onSignalingLost(peer: Peer, reason: string): void {
    if (peer !== this.peer || this.destroyed) return;
    this.signalingUp = false;
    this.retryLater(reason);
  }

  private onPeerError(peer: Peer, error: PeerError<string>): void {
    if (peer !== this.peer) return;
    const room = this.session?.key ?? this.options.room;
    switch (error.type) {
      case "peer-unavailable": {
        // The server answered EXPIRE for a dial: the peer left before we reached it.
        console.info(`nbchat: ${error.message} (room ${room})`);
        return;
      }
      case "browser-incompatible":
        this.goOffline("this browser does not support WebRTC data channels");
        return;
      case "unavailable-id":
      case "invalid-id":
      case "invalid-key":
        // Our id is gone (evicted after alive_timeout): only a new Peer, with a new id, helps.
        console.warn(`nbchat: signaling refused our id in room ${room}: ${error.message}`);
        this.signalingUp = false;
        peer.destroy();
        this.retryLater(error.message || error.type);
        return;
      case "network":
      case "socket-error":
      case "socket-closed":
      case "disconnected":
        console.warn(`nbchat: signaling error in room ${room}: ${error.type}: ${error.message}`);
        this.signalingUp = false;
        this.retryLater("lost connection to the Jupyter server");
        return;
      case "server-error":
      case "ssl-unavailable":
        console.warn(`nbchat: signaling error in room ${room}: ${error.type}: ${error.message}`);
        this.signalingUp = false;
        this.retryLater(`the chat service refused the connection (${error.message || error.type})`);
        return;
      default:
        console.warn(`nbchat: peer error in room ${room}: ${error.type}: ${error.message}`);
    }
  }

  /** Reconnect after a delay: reuse our id if peerjs still can, else start a new Peer. */
  private retryLater(reason: string): void {
    if (this.destroyed || this.retryTimer !== null) return;
    const delay = backoffDelay(this.attempt++);
    this.offlineReason = `${reason}; retrying in ${Math.ceil(delay / 1000)} s`;
    this.setPhase(this.openLinkCount() > 0 ? "online" : "offline");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.retryNow();
    }, delay);
  }

  private retryNow(): void {
    const peer = this.peer;
    if (peer !== null && !peer.destroyed && peer.disconnected && this.session !== null) {
      peer.reconnect();
    } else if (peer === null || peer.destroyed) {
      this.peer = null;
      void this.connect();
    }
  }

  // --- presence ---------------------------------------------------------------------------

  private onPresence(frame: PresenceFrame): void {
    switch (frame.type) {
      case "ROSTER": {
        // Presence is back, so the server is: signaling need not sit out the rest of its backoff.
        if (!this.signalingUp) this.onBrowserOnline();
        this.rosterKnown = true;
        this.present.clear();
        for (const entry of frame.peers) this.present.set(entry.peer_id, entry);
        // The newcomer dials everyone already present; the others wait for our call.
        for (const peerId of this.present.keys()) this.dial(peerId);
        // Left out of the roster is not proof of leaving: after a server restart it lists only
        // those whose signaling is back so far. An open link to the others is kept (it outlived
        // the server); a dead one closes, or goes silent and is dropped, by itself.
        for (const [peerId, link] of [...this.links]) if (!this.present.has(peerId) && !link.open) this.dropLink(peerId);
        break;
      }
      case "USER_CONNECTED":
        this.present.set(frame.peer.peer_id, frame.peer);
        this.flushEarly(frame.peer.peer_id);
        break;
      case "USER_DISCONNECTED":
        this.present.delete(frame.peer.peer_id);
        this.refused.delete(frame.peer.peer_id);
        this.dropLink(frame.peer.peer_id);
        break;
      case "ERROR":
        console.warn(`nbchat: presence error in room ${this.session?.key}: ${frame.payload.msg}`);
        return;
    }
    for (const peerId of this.present.keys()) this.flushEarly(peerId);
    this.changed(false);
  }

  // --- the mesh ---------------------------------------------------------------------------

  private dial(peerId: string): void {
    const peer = this.peer;
    if (peer === null || peer.disconnected || peerId === peer.id || this.links.has(peerId)) return;
    // peerjs returns undefined (and emits an error) when the signaling socket is down.
    const conn = peer.connect(peerId, { reliable: true, serialization: "json" }) as DataConnection | undefined;
    if (conn === undefined) return;
    this.attach(conn, true);
  }

  private onIncoming(conn: DataConnection): void {
    const existing = this.links.get(conn.peer);
    if (existing !== undefined && !existing.open && existing.dialedByUs && this.selfId() < conn.peer) {
      // Both sides dialed at once: both keep the connection dialed by the smaller id.
      conn.close();
      return;
    }
    if (existing !== undefined) this.dropLink(conn.peer, false);
    this.attach(conn, false);
  }

  private attach(conn: DataConnection, dialedByUs: boolean): void {
    const maxBytes = this.session?.max_message_bytes ?? MAX_MESSAGE_BYTES;
    const link: Link = {
      conn,
      open: false,
      dialedByUs,
      assembler: new ChunkAssembler({ maxBytes: maxChunkedBytes(maxBytes) }),
      limits: new IncomingLimits(),
      early: [],
      timer: setTimeout(() => {
        if (!link.open && this.links.get(conn.peer) === link) this.lostLink(conn.peer, link);
      }, DIAL_TIMEOUT_MS),
      silentTimer: null,
      syncTimer: null,
      pendingHave: undefined,
    };
    this.links.set(conn.peer, link);
    guardDataMessages(conn, (error) => {
      if (this.links.get(conn.peer) !== link || !this.admit(link, false)) return;
      console.warn(`nbchat: ignoring malformed frame from ${conn.peer}: ${describe(error)}`);
    });
    conn.on("open", () => {
      if (this.links.get(conn.peer) !== link) return;
      link.open = true;
      this.refused.delete(conn.peer);
      if (link.timer !== null) clearTimeout(link.timer);
      link.timer = null;
      this.redialAttempts.delete(conn.peer);
      this.sendFrame(link, { type: ChatFrameType.SYNC, have: this.log?.have(conn.peer) ?? {} });
      this.changed(false);
    });
    conn.on("data", (data) => {
      if (this.links.get(conn.peer) === link) this.onData(link, data);
    });
    conn.on("close", () => {
      if (this.links.get(conn.peer) === link) this.lostLink(conn.peer, link);
    });
    conn.on("error", (error) => {
      console.warn(`nbchat: connection to ${conn.peer} in room ${this.session?.key}: ${error.message}`);
      if (this.links.get(conn.peer) === link) this.lostLink(conn.peer, link);
    });
    conn.on("iceStateChanged", (state) => {
      if (this.links.get(conn.peer) !== link) return;
      if (state !== "disconnected") {
        if (link.silentTimer !== null) clearTimeout(link.silentTimer);
        link.silentTimer = null;
      } else if (link.silentTimer === null) {
        link.silentTimer = setTimeout(() => {
          if (this.links.get(conn.peer) !== link) return;
          console.warn(`nbchat: link to ${conn.peer} in room ${this.session?.key} went silent; dialing again`);
          // The other side may not have noticed (it hears nothing either): we dial, whoever we are.
          this.lostLink(conn.peer, link, true);
        }, SILENT_LINK_MS);
      }
    });
  }

  /** A link failed or closed while the peer may still be present: dial again with backoff. */
  private lostLink(peerId: string, link: Link, redialAnyway = false): void {
    this.dropLink(peerId);
    if (!this.present.has(peerId) || this.destroyed) return;
    // Only one side re-dials (the smaller id) so the two do not keep colliding.
    if (!redialAnyway && !(this.selfId() < peerId) && link.open) return;
    const attempt = this.redialAttempts.get(peerId) ?? 0;
    this.redialAttempts.set(peerId, attempt + 1);
    const timer = setTimeout(() => {
      this.redialTimers.delete(peerId);
      if (this.present.has(peerId)) this.dial(peerId);
    }, backoffDelay(attempt));
    this.redialTimers.set(peerId, timer);
  }

  private dropLink(peerId: string, notify = true): void {
    const link = this.links.get(peerId);
    if (link === undefined) return;
    this.links.delete(peerId);
    if (link.timer !== null) clearTimeout(link.timer);
    if (link.silentTimer !== null) clearTimeout(link.silentTimer);
    if (link.syncTimer !== null) clearTimeout(link.syncTimer);
    link.conn.close();
    if (notify) this.changed(false);
  }

  private openLinkCount(): number {
    let count = 0;
    for (const link of this.links.values()) if (link.open) count += 1;
    return count;
  }

  private selfId(): string {
    return this.peer?.id ?? "";
  }

  // --- chat frames ------------------------------------------------------------------------

  private sendFrame(link: Link, frame: ChatFrame): void {
    for (const part of split(frame, () => `c-${this.selfId()}-${++this.chunkCounter}`)) {
      try {
        void link.conn.send(part);
      } catch (error) {
        console.warn(`nbchat: send to ${link.conn.peer} failed`, error);
      }
    }
  }

  private onData(link: Link, data: unknown): void {
    const peerId = link.conn.peer;
    if (!this.present.has(peerId)) {
      // Presence and signaling are separate sockets: the call can beat USER_CONNECTED.
      if (link.early.length < MAX_EARLY_FRAMES) link.early.push(data);
      return;
    }
    let frame = parseChatFrame(data);
    // Malformed frames count too: a flood of junk must not cost a warning each.
    if (!this.admit(link, frame !== null && frame.type === ChatFrameType.MESSAGE)) return;
    if (frame !== null && frame.type === ChatFrameType.CHUNK) {
      let whole: ChatFrame | null;
      try {
        whole = link.assembler.feed(frame);
      } catch (error) {
        if (!(error instanceof InvalidFrame)) throw error;
        console.warn(`nbchat: bad chunk from ${peerId}: ${describe(error)}`);
        return;
      }
      if (whole === null) return;
      frame = whole;
      if (frame.type === ChatFrameType.MESSAGE && !this.admit(link, true)) return;
    }
    if (frame === null) {
      console.warn(`nbchat: ignoring malformed frame from ${peerId}`);
      return;
    }
    this.onFrame(link, peerId, frame);
  }

  /** Whether a frame from `link` is within its rate limits; warns now and then while it floods. */
  private admit(link: Link, isMessage: boolean): boolean {
    if (link.limits.accept(isMessage)) return true;
    this.noteFlood(link.conn.peer);
    const dropped = link.limits.report();
    if (dropped !== null) {
      console.warn(
        `nbchat: peer ${link.conn.peer} in room ${this.session?.key} is flooding: dropped ${dropped} frames`,
      );
    }
    return false;
  }

  /** Count a dropped frame of `peerId` for the notice the reader sees while it floods. */
  private noteFlood(peerId: string): void {
    const now = Date.now();
    const flood = this.floods.get(peerId);
    if (flood === undefined) {
      this.floods.set(peerId, { dropped: 1, until: now + FLOOD_NOTICE_MS });
      this.changed(false);
    } else {
      flood.dropped += 1;
      flood.until = now + FLOOD_NOTICE_MS;
      if (flood.dropped % 50 === 0) this.changed(false);
    }
    if (this.floodTimer === null) this.scheduleFloodExpiry();
  }

  private scheduleFloodExpiry(): void {
    const next = Math.min(...[...this.floods.values()].map((f) => f.until));
    this.floodTimer = setTimeout(() => {
      this.floodTimer = null;
      const now = Date.now();
      for (const [peerId, flood] of this.floods) if (flood.until <= now) this.floods.delete(peerId);
      this.changed(false);
      if (this.floods.size > 0 && !this.destroyed) this.scheduleFloodExpiry();
    }, Math.max(0, next - Date.now()));
  }

  private onFrame(link: Link, peerId: string, frame: ChatFrame): void {
    const log = this.log;
    const user = this.present.get(peerId)?.user;
    if (log === null || user === undefined) return;
    const limit = this.session?.max_message_bytes ?? Infinity;
    switch (frame.type) {
      case ChatFrameType.MESSAGE: {
        const text = (frame.message as { text?: unknown }).text;
        if (typeof text === "string" && utf8Length(text) > limit) return;
        try {
          if (log.receiveDirect(peerId, user, frame.message) !== null) this.changed(true);
        } catch (error) {
          if (!(error instanceof InvalidMessage)) throw error;
          console.warn(`nbchat: invalid message from ${peerId}: ${error.message}`);
        }
        return;
      }
      case ChatFrameType.HISTORY: {
        const fitting = frame.messages.filter((m) => {
          const text = (m as { text?: unknown } | null)?.text;
          return !(typeof text === "string" && utf8Length(text) > limit);
        });
        const connected = new Set([...this.links].filter(([, l]) => l.open).map(([id]) => id));
        const { added, rejected } = log.receiveHistory(fitting, peerId, user, connected);
        if (rejected.length > 0) console.warn(`nbchat: ${rejected.length} invalid history messages from ${peerId}`);
        if (added.length > 0) this.changed(true);
        return;
      }
      case ChatFrameType.SYNC:
        this.answerSync(link, peerId, frame.have);
        return;
      case ChatFrameType.CHUNK:
        return;
    }
  }

  /** Send what `have` lacks, at most once per SYNC_ANSWER_INTERVAL_MS (the latest waits). */
  private answerSync(link: Link, peerId: string, have: unknown): void {
    if (link.syncTimer !== null) {
      link.pendingHave = have;
      return;
    }
    const log = this.log;
    if (log === null) return;
    this.sendHistory(link, log.missingFor(have).filter((m) => m.author !== peerId));
    link.syncTimer = setTimeout(() => {
      link.syncTimer = null;
      const pending = link.pendingHave;
      link.pendingHave = undefined;
      if (pending !== undefined && this.links.get(peerId) === link) this.answerSync(link, peerId, pending);
    }, SYNC_ANSWER_INTERVAL_MS);
  }

  private sendHistory(link: Link, messages: ChatMessage[]): void {
    for (const batch of historyBatches(messages)) {
      this.sendFrame(link, { type: ChatFrameType.HISTORY, messages: batch });
    }
  }

  private flushEarly(peerId: string): void {
    const link = this.links.get(peerId);
    if (link === undefined || link.early.length === 0) return;
    for (const data of link.early.splice(0)) this.onData(link, data);
  }

  /**
   * Periodic repair: sync with every open link, so a message missed by a broken mesh edge
   * still arrives, and call present peers we have no link to (only the smaller id calls).
   */
  private antiEntropy(): void {
    for (const [peerId, link] of this.links) {
      if (link.open) this.sendFrame(link, { type: ChatFrameType.SYNC, have: this.log?.have(peerId) ?? {} });
    }
    for (const peerId of this.present.keys()) {
      if (this.selfId() < peerId && !this.redialTimers.has(peerId)) this.dial(peerId);
    }
  }

  // --- state ------------------------------------------------------------------------------

  private setPhase(phase: Phase): void {
    this.phase = phase;
    this.changed(false);
  }

  private goOffline(reason: string): void {
    this.offlineReason = reason;
    this.setPhase("offline");
  }

  private changed(messagesChanged: boolean): void {
    if (messagesChanged && this.saveTimer === null) {
      this.saveTimer = setTimeout(() => {
        // Serializing a long log takes a while: do it when the page is idle.
        const save = (): void => {
          this.saveTimer = null;
          if (this.log !== null && !this.destroyed) this.store.save(this.log.messages);
        };
        if (typeof requestIdleCallback === "function") requestIdleCallback(save, { timeout: 5_000 });
        else save();
      }, SAVE_DELAY_MS);
    }
    if (this.emitTimer !== null) return;
    // Coalesce bursts (a history of thousands of messages) into one render.
    this.emitTimer = setTimeout(() => {
      this.emitTimer = null;
      this.snapshot = this.computeState();
      for (const listener of this.listeners) listener(this.snapshot);
    }, EMIT_DELAY_MS);
  }

  private computeState(): ChatState {
    return chatState({
      phase: this.phase,
      openLinks: this.openLinkCount(),
      signalingUp: this.signalingUp,
      reason: this.offlineReason,
      relayProblem: this.relayProblem,
      selfId: this.log?.peerId ?? null,
      self: this.session?.user ?? null,
      present: [...this.present.values()],
      rosterKnown: this.rosterKnown,
      messages: this.log !== null ? this.log.messages.slice() : restoredForDisplay(this.stored),
      maxMessageBytes: this.session?.max_message_bytes ?? MAX_MESSAGE_BYTES,
      audience: this.session?.audience ?? null,
      flooding: [...this.floods].map(([peerId, flood]) => {
        const user = this.present.get(peerId)?.user;
        const name = user ? user.display_name || user.name || user.username : "A peer";
        return { name, dropped: flood.dropped };
      }),
      sealed: (this.options.passphrase ?? null) !== null,
      refused: [...this.refused.keys()].map((peerId) => {
        const user = this.present.get(peerId)?.user;
        return user ? user.display_name || user.name || user.username : "someone";
      }),
    });
  }
}

/** Stored messages shown before we have a log: validated through a throwaway log. */
function restoredForDisplay(stored: unknown[]): ChatMessage[] {
  if (stored.length === 0) return [];
  const log = new MessageLog("restoring", { username: "", name: "", display_name: "", initials: null, color: null, avatar_url: null });
  log.restore(stored);
  return log.messages.slice();
}

/**
 * peerjs 1.5 parses every payload itself (`JSON.parse` of the UTF-8 bytes) and throws on
 * one that is not UTF-8 JSON, is `null`, or is a text frame: an uncaught error per frame,
 * beyond our rate limits. Catch those and report them as malformed frames of that peer.
 */
function guardDataMessages(conn: DataConnection, onMalformed: (error: unknown) => void): void {
  const inner = conn as unknown as { _handleDataMessage?: (event: MessageEvent) => void };
  const handle = inner._handleDataMessage;
  if (typeof handle !== "function") return;
  inner._handleDataMessage = (event: MessageEvent) => {
    try {
      handle.call(conn, event);
    } catch (error) {
      onMalformed(error);
    }
  };
}

/** Our Jupyter server answered a chat request with an error status; the message says why in
 *  words and what the user can do. */
export class RequestRefused extends Error {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    const why = detail.trim().replace(/[.\s]+$/, "");
    let advice = "";
    if ((status === 401 || status === 403) && (why === "" || /authenticat|forbidden|xsrf|log ?in/i.test(why))) {
      advice = "reload the page; if that does not help, log in to Jupyter again";
    } else if (status === 404) {
      advice = "is the nbchat server extension enabled (jupyter server extension list)?";
    } else if (status >= 500) {
      advice = "see the Jupyter server's log";
    }
    super(`the Jupyter server refused the chat's request (${status})${why ? `: ${why}` : ""}${advice ? ` — ${advice}` : ""}`);
    this.name = "RequestRefused";
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
