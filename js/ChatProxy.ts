// The widget's networking, wired together: session config, peerjs signaling, presence, the
// data-channel mesh (meshLinks.ts) and room sync (core/sync.ts). React components only
// subscribe to its state and call send().

import { Peer, type PeerError, type PeerOptions } from "peerjs";
import { Authorship } from "./authorship";
import { pageVerifier } from "./verifier";
import { backoffDelay } from "./backoff";
import { type ChatState, Conversation, type OffRecord, type Phase, chatState } from "./chatState";
import { FILE_LIMIT_BYTES } from "./core/files";
import { Timeline } from "./core/edits";
import { type ExportDocument, toJson } from "./core/export";
import { type ChatFrame, ChatFrameType, MAX_MESSAGE_BYTES, utf8Length } from "./core/frames";
import { TYPING_REFRESH_MS, TypingTracker, typingLabel } from "./core/mentions";
import { MessageLog, RECORD_KIND } from "./core/msglog";
import { cleanMime, sizeError } from "./core/rich";
import type { SessionConfig } from "./core/session";
import { ANTI_ENTROPY_MS, RoomSync, type SyncOutput } from "./core/sync";
import { FileShare, describeFile } from "./fileShare";
import { FloodNotices } from "./floodNotices";
import { type ImportResult, readExport } from "./historyFile";
import { type PageInfo, pageInfo } from "./jupyterPage";
import { MeshLinks } from "./meshLinks";
import { PresenceSocket } from "./presenceSocket";
import { type ChatMessage, type Identity, type Presence, type PresenceFrame, messageId } from "./protocol";
import { Sealer } from "./roomKey";
import { type Rejection, sealSignaling } from "./sealedSignaling";
import { RequestRefused, SessionClient, describe } from "./sessionClient";
import { LocalCopy, type LocalCopyStats } from "./storage";
import { type CreatePeerConnection, NO_TURN_SERVER, hasTurnServer, probeTurn } from "./turnProbe";

export { RequestRefused } from "./sessionClient";

export interface ChatProxyOptions {
  room: string;
  /** Use only TURN-relayed ICE candidates (the server's ice_transport_policy may force it). */
  relayOnly?: boolean;
  /** Where Jupyter is; read from the page by default. */
  page?: PageInfo;
  /** Injectable transports (tests use fakes). */
  fetch?: typeof fetch;
  /** Where earlier versions kept a local copy (migrated to IndexedDB, then freed). */
  storage?: Storage | null;
  /** Where the local copy lives (null: none). */
  indexedDB?: IDBFactory | null;
  /** Makes the peerjs client; `id` is the one the server issued us (peerjs never fetches one). */
  createPeer?: (options: PeerOptions, id: string) => Peer;
  createSocket?: (url: string) => WebSocket;
  createPeerConnection?: CreatePeerConnection;
  /** The room passphrase (or its promise: the kernel sends it by comm message), or none.
   *  With one, every OFFER/ANSWER/CANDIDATE is sealed end to end (see sealedSignaling.ts). */
  passphrase?: string | Promise<string> | null;
}

/** A sync answer's later batches go while the link holds less than this (a live message
 *  then waits behind at most this much), and resume when it drains to half. */
const HISTORY_HIGH_WATER = 64 * 1024;
/** Resume a paused answer after this long even if the link never said it drained. */
const HISTORY_POLL_MS = 50;
const NOTHING_STORED: LocalCopyStats = { messages: 0, bytes: 0 };
/** Read from the local copy first, so the first screen shows before the rest is read. */
const FIRST_SCREEN = 100;
/** Renders closer together than this are a burst (a history pouring in): the next one waits
 *  for an animation frame. A lone frame (live chat) renders at once, in the task it came in.
 *  New messages are judged against renders of new messages only: a typing or presence render
 *  just before (the author's "stopped typing") does not make the message wait for a frame. */
const BURST_MS = 8;
/** rAF does not fire in a hidden tab, and a tab can hide after we asked for one. */
const FRAME_FALLBACK_MS = 50;

export class ChatProxy {
  private readonly page: PageInfo;
  private readonly sessions: SessionClient;
  private readonly copy: LocalCopy;
  private copyStats: LocalCopyStats | null = null;
  private readonly listeners = new Set<(state: ChatState) => void>();
  private readonly present = new Map<string, Presence>();
  private readonly outbox: { text: string; mime: Record<string, unknown> | null; fields: Record<string, unknown> }[] = [];
  private readonly mesh: MeshLinks;
  private readonly floods: FloodNotices;
  private readonly authorship: Authorship;
  /** Files shared peer to peer: what we offer, what we receive, and each card's progress. */
  readonly files: FileShare;
  private session: SessionConfig | null = null;
  private peer: Peer | null = null;
  private presence: PresenceSocket | null = null;
  private log: MessageLog | null = null;
  private sync: RoomSync | null = null;
  /** Messages read from the local copy before we have a peer id (and thus a log). */
  private stored: MessageLog | null = null;
  private phase: Phase = "connecting";
  private offlineReason = "";
  private relayProblem: string | null = null;
  private signalingUp = false;
  private rosterKnown = false;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private emitTimer: ReturnType<typeof setTimeout> | null = null;
  private emitFrame: number | null = null;
  private emitQueued = false;
  /** The queued render waits for a frame (a burst); a lone new message may still go first. */
  private emitDeferred = false;
  /** The queued render shows new messages. */
  private emitAdded = false;
  /** The log has held a record switch or an entry off the record (noteOffRecord). */
  private offRecordSeen = false;
  private lastAddedEmit = -Infinity;
  private lastEmit = -Infinity;
  /** Set for the room sync's next deadline (a waiting sync answer, the next repair round). */
  private syncTimer: ReturnType<typeof setTimeout> | null = null;
  private destroyed = false;
  /** Peers whose sync answer is being sent batch by batch. */
  private readonly pumping = new Set<string>();
  private snapshot: ChatState;
  /** Peers whose signaling failed the passphrase check, until a link with them opens or they leave. */
  private readonly refused = new Map<string, Rejection>();
  /** What each message shows after its edits, deletes and reactions, folded as entries come. */
  private readonly conversation = new Conversation();
  /** Who is typing, from `typing` frames (never stored). */
  private readonly typists = new TypingTracker();
  private typingTimer: ReturnType<typeof setTimeout> | null = null;
  /** When we last told the others we are typing (-Infinity: we are not). */
  private typingSent = -Infinity;

  constructor(private readonly options: ChatProxyOptions) {
    this.options = { ...options, createPeer: this.sealingPeers(options) };
    this.page = options.page ?? pageInfo();
    this.sessions = new SessionClient(this.page, options.fetch ?? window.fetch.bind(window));
    this.copy = new LocalCopy(`${this.page.baseUrl}|${options.room}`, {
      indexedDB: options.indexedDB,
      legacy: options.storage,
      onStats: (stats) => {
        this.copyStats = stats;
        this.changed(false);
      },
    });
    this.authorship = new Authorship({
      fetchCert: (session, peerId, key) => this.sessions.certificate(session, peerId, key),
      learned: (certs) => this.copy.saveCerts(certs),
      verifier: (checks) => pageVerifier()(checks),
      held: (entry) => {
        const { author, seq } = entry;
        if (typeof author !== "string" || typeof seq !== "number") return undefined;
        return this.log?.get(messageId(author, seq)) as Record<string, unknown> | undefined;
      },
    });
    void this.restoreLocal();
    this.floods = new FloodNotices(() => this.changed(false));
    this.mesh = new MeshLinks({
      peer: () => this.peer,
      isPresent: (peerId) => this.present.has(peerId),
      present: () => this.present.keys(),
      maxMessageBytes: () => this.session?.max_message_bytes ?? 65_536,
      room: () => this.session?.key ?? this.options.room,
      onOpen: (peerId) => {
        this.refused.delete(peerId);
        this.authorship.linkChanged(peerId);
        if (this.sync !== null) this.carry(this.sync.onLinkOpen(peerId, now()));
        this.files.onLinkOpen(peerId);
      },
      onClosed: (peerId) => {
        this.authorship.linkChanged(peerId);
        if (this.sync !== null) this.carry(this.sync.onLinkClosed(peerId));
        this.files.onLinkClosed(peerId);
      },
      onFrame: (peerId, frame) => this.onFrame(peerId, frame),
      onFlood: (peerId) => this.floods.note(peerId),
      wantsPart: (peerId, fileId) => this.files.wantsPart(peerId, fileId),
      changed: () => this.changed(false),
    });
    this.files = new FileShare({
      selfId: () => this.log?.peerId ?? null,
      send: (peerId, frame) => this.mesh.send(peerId, frame),
      isOpen: (peerId) => this.mesh.isOpen(peerId),
      buffered: (peerId) => this.mesh.buffered(peerId),
    });
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
    if (rejection.type === "OFFER") this.mesh.dial(rejection.peerId);
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

  /** Post `text` as this browser's peer (a rich message with its MIME bundle `mime`, `text`
   *  the fallback: core/rich keeps what is safe to carry). Queued until we have a peer id. */
  send(text: string, mime: Record<string, unknown> | null = null, fields: Record<string, unknown> = {}): ChatMessage | null {
    // An amendment (edit, delete, reaction) may have no text; a message needs some.
    const body = text.trim() === "" ? "" : text;
    if (body === "" && fields.kind === undefined) return null;
    // The kernel's off_the_record() (through here): a switch to the state the room is in is a no-op.
    if (fields.kind === RECORD_KIND && this.log !== null && this.offTheRecord === (fields.on === false)) return null;
    if (this.log === null || this.sync === null) {
      this.outbox.push({ text: body, mime, fields });
      return null;
    }
    const limit = this.session?.max_message_bytes ?? Infinity;
    if (utf8Length(body) > limit) throw new Error(`Message too long: the limit is ${limit} bytes`);
    const message = this.log.compose(body, Date.now(), mime === null ? null : cleanMime(mime), null, this.flagged(fields));
    this.publish(message, true);
    return message;
  }

  /** Answer message `id` with `text` (a message that quotes it). */
  reply(id: string, text: string): ChatMessage {
    this.target(id);
    return this.amend(text, { reply_to: id });
  }

  /** Change the text of one of our own messages, for everyone. */
  edit(id: string, text: string): ChatMessage {
    this.own(id, "edit");
    return this.amend(text, { kind: "edit", target: id });
  }

  /** Take back one of our own messages, for everyone. */
  remove(id: string): ChatMessage {
    this.own(id, "delete");
    return this.amend("", { kind: "delete", target: id }, true);
  }

  /** Set (or with `on` false take back) our reaction `emoji` on message `id`. */
  react(id: string, emoji: string, on = true): ChatMessage {
    this.target(id);
    return this.amend("", { kind: "react", target: id, emoji, on }, true);
  }

  /** Take the room off the record (`off` true) or put it back on, for everyone: a signed
   *  switch entry. Anyone in the room may. Null if the room already is so. */
  setOffTheRecord(off: boolean): ChatMessage | null {
    if (this.log === null || this.sync === null) throw new Error("not connected to the room yet");
    if (this.offTheRecord === off) return null;
    return this.amend("", { kind: RECORD_KIND, on: !off }, true);
  }

  /** Whether the room is off the record now (its latest switch, core/edits). */
  get offTheRecord(): boolean {
    return this.fold().record()?.on === false;
  }

  /** The conversation folded up to the log as it is now (cheap: incremental). */
  private fold(): Conversation {
    this.conversation.update((this.log ?? this.stored)?.messages ?? []);
    return this.conversation;
  }

  /** `fields` of an entry we compose, flagged `off_record` when it is: a message while the
   *  room is off the record, an amendment of a message that is (its signature covers it). */
  private flagged(fields: Record<string, unknown>): Record<string, unknown> {
    if (fields.kind === RECORD_KIND) return fields;
    const conversation = this.fold();
    const target = typeof fields.target === "string" ? fields.target : null;
    const off = fields.kind === undefined ? conversation.record()?.on === false : target !== null && conversation.offRecord(target);
    return off ? { ...fields, off_record: true } : fields;
  }

  /** Keep what is on the record of `messages` in the local copy. A switch or an entry off
   *  the record can change the verdict on entries held already (a switch arriving late, an
   *  off-the-record message whose amendments came first): those leave the copy. */
  private keep(messages: readonly ChatMessage[]): void {
    // A room never taken off the record (most): every entry is kept, with no fold. A newest-
    // first catch-up inserts each batch before what is held, so folding for it rebuilt the
    // whole conversation once per batch (~350 times for 10,000 entries).
    if (!this.noteOffRecord(messages)) {
      this.copy.save(messages);
      return;
    }
    const conversation = this.fold();
    this.copy.save(messages.filter((m) => !conversation.offRecord(m.id)));
    if (messages.some((m) => m.kind === RECORD_KIND || conversation.offRecord(m.id))) {
      const held = (this.log ?? this.stored)?.messages ?? [];
      this.copy.forget(held.filter((m) => conversation.offRecord(m.id)).map((m) => m.id));
    }
  }

  /** Whether the log has held a record switch or an entry flagged off the record, counting
   *  `entries` (every entry reaches the log through keep() or the local copy's restore). */
  private noteOffRecord(entries: readonly unknown[]): boolean {
    this.offRecordSeen ||= entries.some(
      (m) => typeof m === "object" && m !== null && ((m as ChatMessage).kind === RECORD_KIND || (m as ChatMessage).off_record === true),
    );
    return this.offRecordSeen;
  }

  /** Tell the others we are typing (at most every TYPING_REFRESH_MS) or that we stopped. */
  setTyping(on: boolean): void {
    const at = Date.now();
    if (on && at - this.typingSent < TYPING_REFRESH_MS) return;
    if (!on && this.typingSent === -Infinity) return;
    this.typingSent = on ? at : -Infinity;
    for (const peerId of this.present.keys()) {
      if (this.mesh.isOpen(peerId)) this.mesh.send(peerId, { type: ChatFrameType.TYPING, on });
    }
  }

  /** The message `id` (not an amendment) in our log, or an error saying why not. */
  private target(id: string): ChatMessage {
    if (this.log === null || this.sync === null) throw new Error("not connected to the room yet");
    const message = this.log.get(id);
    if (message === undefined || message.kind !== undefined) throw new Error(`no message ${id} in this room`);
    return message;
  }

  private own(id: string, what: string): void {
    const message = this.target(id);
    if (message.user.username !== this.log?.user.username) {
      throw new Error(`you can only ${what} your own messages`);
    }
  }

  /** Compose an entry with `extensions` through the same signed path as messages. */
  private amend(text: string, extensions: Record<string, unknown>, empty = false): ChatMessage {
    const log = this.log as MessageLog;
    if (!empty && text.trim() === "") throw new Error("the message is empty");
    const limit = this.session?.max_message_bytes ?? Infinity;
    if (utf8Length(text) > limit) throw new Error(`Message too long: the limit is ${limit} bytes`);
    const entry = log.compose(text, Date.now(), null, null, this.flagged(extensions));
    this.publish(entry, extensions.kind !== "react");
    return entry;
  }

  /** Share `file` with the room: a card in the chat, the bytes peer to peer to whoever asks.
   *  Rejects a file over the limit with a clear error; nothing is posted then. */
  async shareFile(file: Blob & { name: string }): Promise<ChatMessage | null> {
    if (file.size > FILE_LIMIT_BYTES) {
      throw new Error(`${sizeError(`“${file.name}”`, file.size, FILE_LIMIT_BYTES)}`);
    }
    if (this.log === null || this.sync === null) throw new Error("not connected to the room yet");
    const bytes = new Uint8Array(await file.arrayBuffer());
    const { meta, text } = await describeFile(file, bytes);
    if (this.log === null || this.sync === null || this.destroyed) return null;
    const message = this.log.compose(text, Date.now(), null, meta, this.flagged({}));
    this.files.offer(message, bytes);
    this.publish(message);
    return message;
  }

  /**
   * Our new entry to the local copy and every open link, once signed (in signed rooms): sign
   * `message`, send it, then (`typed`) tell the others we stopped typing (after it, so that
   * frame never goes or renders ahead of the message; their typing line clears on the message
   * anyway), then show it here, at once whatever else is pouring in: it was made here.
   *
   * Shown after it is sent, not before: rendering it (~1 ms) while the signature was being
   * made kept it from leaving until the render ended, and the others waited that long too
   * (bench/browser_latency.py, docs/benchmarks.md). The signature takes a fraction of that.
   */
  private publish(message: ChatMessage, typed = false): void {
    const sync = this.sync;
    this.authorship.sign(message, () => {
      if (this.destroyed || sync === null) return;
      this.keep([message]);
      this.carry(sync.publish(message));
      if (typed) this.setTyping(false);
      this.changed(true);
    });
  }

  /** The room's history as an export document: every entry held, in log order, with the
   *  certificates of their authors in signed rooms (so an importer can check them). */
  exportDocument(exported: number = Date.now()): ExportDocument {
    // What was said off the record is never exported.
    const entries = this.conversation.kept((this.log ?? this.stored)?.messages.slice() ?? []);
    return toJson(this.options.room, entries, exported, this.authorship.certsFor(entries));
  }

  /**
   * Import an export file's text into this room's log: refused whole (an Error saying why)
   * if it is not an export of this room; otherwise each new entry is checked as one from a
   * peer is (signature and certified author in signed rooms, then the log's history rules),
   * kept in the local copy and shown; peers that lack them get them by history sync.
   */
  async importHistory(text: string): Promise<ImportResult> {
    const { entries, certs } = readExport(text, this.options.room);
    const log = this.log;
    const sync = this.sync;
    if (log === null || sync === null) throw new Error("Not imported: the chat is not connected to the room yet.");
    const isHeld = (m: unknown): boolean =>
      typeof m === "object" && m !== null && typeof (m as { id?: unknown }).id === "string" && log.has((m as { id: string }).id);
    const fresh = entries.filter((m) => !isHeld(m));
    const { kept, unverified } = await this.authorship.checkImported(certs, fresh);
    if (this.sync !== sync || this.destroyed) throw new Error("Not imported: the chat reconnected meanwhile; try again.");
    const out = sync.importHistory(kept);
    const result: ImportResult = { messages: 0, amendments: 0, held: 0, unverified, invalid: 0 };
    for (const event of out.events) {
      if (event.type === "added") {
        for (const message of event.messages) {
          if (message.kind === undefined) result.messages += 1;
          else result.amendments += 1;
        }
      } else if (event.type === "rejected") {
        result.invalid += event.reasons.length;
        console.warn(`nbchat: ${event.reasons.length} imported entries refused in ${this.options.room}:`, event.reasons.slice(0, 5));
      } else if (event.type === "too_big") {
        result.invalid += event.count;
      }
    }
    // Held entries may be in the file more than once: whatever was neither added nor refused.
    result.held = entries.length - unverified - result.messages - result.amendments - result.invalid;
    this.carry({ sends: out.sends, events: out.events.filter((e) => e.type === "added") });
    this.changed(true);
    return result;
  }

  /** Forget this room's copy on this computer (what the page shows stays until reload). */
  clearLocalCopy(): Promise<void> {
    return this.copy.clear();
  }

  /** Show the local copy before any peer answers: the newest screenful first, then the rest. */
  private async restoreLocal(): Promise<void> {
    try {
      this.authorship.remember(await this.copy.loadCerts());
      this.restoreStored(await this.copy.loadNewest(FIRST_SCREEN));
      this.restoreStored(await this.copy.loadAll());
    } catch (error) {
      console.warn(`nbchat: could not read the local copy of ${this.options.room}`, error);
    }
  }

  private restoreStored(messages: unknown[]): void {
    if (this.destroyed || messages.length === 0) return;
    this.noteOffRecord(messages);
    if (this.log === null) {
      this.stored ??= new MessageLog("restoring", { username: "", name: "", display_name: "", initials: null, color: null, avatar_url: null });
      this.stored.restore(messages);
    } else {
      this.log.restore(messages);
    }
    this.changed(true);
  }

  destroy(): void {
    this.destroyed = true;
    this.files.destroy();
    if (typeof window !== "undefined") window.removeEventListener("online", this.onBrowserOnline);
    for (const timer of [this.retryTimer, this.emitTimer, this.syncTimer, this.typingTimer]) {
      if (timer !== null) clearTimeout(timer);
    }
    if (this.emitFrame !== null && typeof cancelAnimationFrame === "function") cancelAnimationFrame(this.emitFrame);
    this.floods.destroy();
    void this.copy.flush();
    this.presence?.close();
    this.mesh.destroy();
    this.peer?.destroy();
    this.listeners.clear();
  }

  // --- session and signaling ------------------------------------------------------------

  private async connect(): Promise<void> {
    if (this.destroyed) return;
    this.setPhase("connecting");
    let joined: { session: SessionConfig; peerId: string };
    try {
      joined = await this.sessions.join(this.options.room);
    } catch (error) {
      this.retryLater(error instanceof RequestRefused ? error.message : `cannot reach the Jupyter server (${describe(error)})`);
      return;
    }
    if (this.destroyed) return;
    const { session, peerId } = joined;
    try {
      await this.authorship.certify(session, peerId);
      // A signed room: the page's verifier Worker starts now, while the link forms (made at the
      // first history frame, its start queued behind the frames and the catch-up was slower).
      if (this.authorship.active) pageVerifier();
    } catch (error) {
      this.retryLater(error instanceof RequestRefused ? error.message : `cannot sign messages (${describe(error)})`);
      return;
    }
    if (this.destroyed) return;
    this.session = session;
    this.mesh.dropAll();
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
    peer.on("connection", (conn) => this.mesh.onIncoming(conn));
    peer.on("disconnected", () => this.onSignalingLost(peer, "lost connection to the Jupyter server"));
    peer.on("error", (error) => this.onPeerError(peer, error));
  }

  private onPeerOpen(peer: Peer, id: string): void {
    if (peer !== this.peer || this.session === null) return;
    this.attempt = 0;
    this.signalingUp = true;
    this.mesh.setSelf(id);
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
    // Back after an outage: as on joining, call those we lost meanwhile (the bigger ids).
    this.mesh.dialRoster(this.present.keys());
    this.setPhase("online");
  }

  private startLog(id: string, user: Identity): void {
    const previous = this.log;
    const log = new MessageLog(id, user);
    log.restore(previous !== null ? previous.messages : this.stored?.messages ?? []);
    this.stored = null;
    this.log = log;
    this.sync = new RoomSync(
      log,
      this.session?.max_message_bytes ?? null,
      now(),
      this.session?.repair_interval ?? ANTI_ENTROPY_MS,
    );
    this.scheduleSync();
    this.files.onMessages(log.messages);
    for (const { text, mime, fields } of this.outbox.splice(0)) this.send(text, mime, fields);
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
    this.setPhase(this.mesh.openCount > 0 ? "online" : "offline");
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
        // Of two peers the smaller id dials: we call the bigger ids present, the others call us.
        this.mesh.dialRoster(this.present.keys());
        // Left out of the roster is not proof of leaving: after a server restart it lists only
        // those whose signaling is back so far. An open link to the others is kept (it outlived
        // the server); a dead one closes, or goes silent and is dropped, by itself.
        this.mesh.dropUnopenedExcept((peerId) => this.present.has(peerId));
        break;
      }
      case "USER_CONNECTED":
        this.present.set(frame.peer.peer_id, frame.peer);
        this.mesh.flushEarly(frame.peer.peer_id);
        this.mesh.rosterChanged(this.present.keys());
        break;
      case "USER_DISCONNECTED":
        this.present.delete(frame.peer.peer_id);
        this.typists.stopped(frame.peer.peer_id);
        this.refused.delete(frame.peer.peer_id);
        this.mesh.forget(frame.peer.peer_id);
        this.mesh.rosterChanged(this.present.keys());
        break;
      case "ERROR":
        console.warn(`nbchat: presence error in room ${this.session?.key}: ${frame.payload.msg}`);
        return;
    }
    for (const peerId of this.present.keys()) this.mesh.flushEarly(peerId);
    this.changed(false);
  }

  // --- room sync --------------------------------------------------------------------------

  private onFrame(peerId: string, frame: ChatFrame): void {
    // Certificates check themselves: learn them even from a peer presence has not announced
    // yet (dropping them would leave that link's entries unverifiable).
    if (frame.type === ChatFrameType.CERTS) {
      this.authorship.incoming(peerId, frame, () => undefined);
      return;
    }
    // A peer that syncs may lack what we sent: its next answer carries the certificates again.
    if (frame.type === ChatFrameType.SYNC) this.authorship.linkChanged(peerId);
    if (this.sync === null || !this.present.has(peerId)) {
      // Entries ahead of presence are dropped (the next sync brings them), their certificates not.
      if ((frame.type === ChatFrameType.MESSAGE || frame.type === ChatFrameType.HISTORY) && Array.isArray(frame.certs)) {
        this.authorship.incoming(peerId, { type: ChatFrameType.CERTS, certs: frame.certs }, () => undefined);
      }
      return;
    }
    // A sync answer pouring in: the local copy writes once it has ended.
    if (isCatchUp(frame)) this.copy.catchingUp();
    if (frame.type === ChatFrameType.FILE_GET || frame.type === ChatFrameType.FILE_PART || frame.type === ChatFrameType.FILE_CANCEL) {
      this.files.onFrame(peerId, frame);
      return;
    }
    // Signed entries: checked (asynchronously, in order per peer) before the log sees them.
    this.authorship.incoming(peerId, frame, (checked) => this.onCheckedFrame(peerId, checked));
  }

  private onCheckedFrame(peerId: string, frame: ChatFrame): void {
    const user = this.present.get(peerId)?.user;
    if (this.sync === null || user === undefined || frame.type === "certs") return;
    if (frame.type === "typing") {
      const name = user.display_name || user.name || user.username;
      // A refresh of someone already shown typing only moves the expiry: no render.
      this.typingChanged(this.typists.typing(peerId, name, Date.now(), frame.on === true));
      return;
    }
    if (frame.type === "message" && this.typists.stopped(peerId)) this.typingChanged();
    if (isCatchUp(frame)) this.copy.catchingUp();
    const out = this.sync.onFrame(peerId, frame, user, now());
    this.carry(out);
    // A big room: what arrived live and is new to us goes on along the overlay, as relayed
    // copies (one-entry history frames). Sync answers are not forwarded.
    if (frame.type === "message" || (frame.type === "history" && frame.messages.length === 1)) {
      for (const event of out.events) {
        if (event.type !== "added") continue;
        for (const message of event.messages) {
          for (const to of this.mesh.forwardTo(message.author, peerId)) {
            this.sendChat(to, { type: "history", messages: [message] });
          }
        }
      }
    }
  }

  /** A chat frame to `to`, with the certificates of its authors ahead of it (signed rooms). */
  private sendChat(to: string, frame: ChatFrame): void {
    for (const part of this.authorship.outgoing(to, frame)) this.mesh.send(to, part);
  }

  /** Send what the room sync returned and act on its events. */
  private carry(out: SyncOutput): void {
    for (const { to, frame } of out.sends) this.sendChat(to, frame);
    if (this.sync !== null) for (const peer of this.sync.backlogged()) this.pump(peer);
    for (const event of out.events) {
      switch (event.type) {
        case "added":
          this.files.onMessages(event.messages);
          this.keep(event.messages);
          this.changed(false, true);
          break;
        case "rejected":
          console.warn(`nbchat: ${event.reasons.length} invalid history messages from ${event.peer}`);
          break;
        case "invalid":
          console.warn(`nbchat: invalid ${event.frame} from ${event.peer}: ${event.reason}`);
          break;
        case "repair":
          this.mesh.repair(this.present.keys());
          break;
        case "too_big":
        case "confirmed":
          break;
      }
    }
    this.scheduleSync();
  }

  /** Send the rest of `peer`'s sync answer as its link drains, yielding to the event loop
   *  between rounds so live messages (in and out) never wait behind the history. */
  private pump(peer: string): void {
    if (this.pumping.has(peer)) return;
    this.pumping.add(peer);
    const step = (): void => {
      const sync = this.sync;
      if (sync === null || this.destroyed || !sync.backlogged().includes(peer)) {
        this.pumping.delete(peer);
        return;
      }
      while (sync.backlogged().includes(peer) && this.mesh.bufferedAmount(peer) < HISTORY_HIGH_WATER) {
        for (const { to, frame } of sync.drain(peer).sends) this.sendChat(to, frame);
      }
      if (!sync.backlogged().includes(peer)) {
        this.pumping.delete(peer);
        return;
      }
      this.mesh.whenDrained(peer, HISTORY_HIGH_WATER / 2, HISTORY_POLL_MS, step);
    };
    setTimeout(step, 0);
  }

  private scheduleSync(): void {
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    const sync = this.sync;
    if (sync === null || this.destroyed) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      if (this.sync === sync) this.carry(sync.tick(now()));
    }, Math.max(0, sync.nextDeadline() - now()));
  }

  // --- state ------------------------------------------------------------------------------

  /** Who is typing changed: render, and again when the next one expires. */
  private typingChanged(render = true): void {
    if (this.typingTimer !== null) clearTimeout(this.typingTimer);
    this.typingTimer = null;
    const next = this.typists.nextChange();
    if (next !== null && !this.destroyed) {
      this.typingTimer = setTimeout(() => {
        this.typingTimer = null;
        this.typingChanged();
      }, Math.max(0, next - Date.now()) + 1);
    }
    if (render) this.changed(false);
  }

  private setPhase(phase: Phase): void {
    this.phase = phase;
    this.changed(false);
  }

  private goOffline(reason: string): void {
    this.offlineReason = reason;
    this.setPhase("offline");
  }

  /** Something the UI shows changed; `urgent`: render now even in a burst (our own message);
   *  `added`: messages came (a burst is judged among those renders only). */
  private changed(urgent: boolean, added = false): void {
    this.scheduleEmit(urgent, added);
  }

  /** Render soon: in a microtask (so what came in is in the DOM before the task ends), or,
   *  when renders come thick and fast, once per animation frame. */
  private scheduleEmit(urgent = false, added = false): void {
    if (this.destroyed) return;
    this.emitAdded ||= added;
    const at = now();
    const soon = urgent || (added ? at - this.lastAddedEmit >= BURST_MS : at - this.lastEmit >= BURST_MS);
    if (this.emitQueued && !(soon && this.emitDeferred)) return;
    this.emitQueued = true;
    if (soon) {
      this.emitDeferred = false;
      queueMicrotask(this.emit);
      return;
    }
    this.emitDeferred = true;
    const visible = typeof document !== "undefined" && document.visibilityState === "visible";
    if (visible && typeof requestAnimationFrame === "function") this.emitFrame = requestAnimationFrame(this.emit);
    this.emitTimer = setTimeout(this.emit, visible ? FRAME_FALLBACK_MS : 0);
  }

  private readonly emit = (): void => {
    if (!this.emitQueued) return;
    this.emitQueued = false;
    if (this.emitTimer !== null) clearTimeout(this.emitTimer);
    if (this.emitFrame !== null && typeof cancelAnimationFrame === "function") cancelAnimationFrame(this.emitFrame);
    this.emitTimer = null;
    this.emitFrame = null;
    this.emitDeferred = false;
    if (this.destroyed) return;
    this.snapshot = this.computeState();
    for (const listener of this.listeners) listener(this.snapshot);
    this.lastEmit = now();
    if (this.emitAdded) this.lastAddedEmit = this.lastEmit;
    this.emitAdded = false;
  };

  /** Who took the room off the record and when, while it is (for the banner). */
  private offRecordState(): OffRecord | null {
    const record = this.conversation.record();
    if (record === null || record.on !== false) return null;
    return { by: record.user.display_name || record.user.name || record.user.username, since: record.time };
  }

  private computeState(): ChatState {
    return chatState({
      phase: this.phase,
      openLinks: this.mesh.openCount,
      signalingUp: this.signalingUp,
      reason: this.offlineReason,
      relayProblem: this.relayProblem,
      selfId: this.log?.peerId ?? null,
      self: this.session?.user ?? null,
      present: [...this.present.values()],
      rosterKnown: this.rosterKnown,
      messages: this.conversation.update((this.log ?? this.stored)?.messages ?? []),
      entries: this.conversation.kept((this.log ?? this.stored)?.messages.slice() ?? []),
      offRecord: this.offRecordState(),
      typing: typingLabel(this.typists.names(Date.now())),
      localCopy: this.copy.available ? this.copyStats ?? NOTHING_STORED : null,
      maxMessageBytes: this.session?.max_message_bytes ?? MAX_MESSAGE_BYTES,
      audience: this.session?.audience ?? null,
      flooding: this.floods.entries().map(([peerId, dropped]) => {
        const user = this.present.get(peerId)?.user;
        const name = user ? user.display_name || user.name || user.username : "A peer";
        return { name, dropped };
      }),
      sealed: (this.options.passphrase ?? null) !== null,
      refused: [...this.refused.keys()].map((peerId) => {
        const user = this.present.get(peerId)?.user;
        return user ? user.display_name || user.name || user.username : "someone";
      }),
    });
  }
}

/** A batch of a sync answer (a relayed copy is a one-entry `history`, a live one a `message`). */
function isCatchUp(frame: ChatFrame): boolean {
  return frame.type === ChatFrameType.HISTORY && Array.isArray(frame.messages) && frame.messages.length > 1;
}

/** The room sync's clock: monotonic milliseconds. */
function now(): number {
  return performance.now();
}
