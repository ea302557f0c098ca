// The widget's data-channel mesh: one peerjs DataConnection per peer the overlay links us to
// (everyone in a room of up to MESH_SIZE), dialed, accepted, timed out, watched for silence,
// dialed again and pruned, as core/mesh.ts decides; in a bigger room it also says where to
// forward a message. Frames in are rate-limited, reassembled and held until presence names
// their sender; frames out are chunked.

import type { DataConnection, Peer } from "peerjs";
import { CHUNK_THRESHOLD_BYTES, ChunkAssembler, maxChunkedBytes, split } from "./core/chunking";
import { type ChatFrame, ChatFrameType, InvalidFrame, parseChatFrame } from "./core/frames";
import { DIAL_TIMEOUT_MS, MeshPolicy, SILENT_LINK_MS } from "./core/mesh";
import { guardDataMessages } from "./peerjsGuard";
import { IncomingLimits } from "./core/rateLimit";
import { describe } from "./sessionClient";

const MAX_EARLY_FRAMES = 256;

/** What the mesh needs from the proxy around it. */
export interface MeshHost {
  /** The peerjs Peer we dial with, if signaling is up. */
  peer(): Peer | null;
  isPresent(peerId: string): boolean;
  /** Everyone present, ourselves included, in roster order. */
  present(): Iterable<string>;
  maxMessageBytes(): number;
  /** For log lines. */
  room(): string;
  /** A link opened: start the history exchange. */
  onOpen(peerId: string): void;
  /** The link to `peerId` is gone (a new one may follow). */
  onClosed(peerId: string): void;
  /** A whole, parsed chat frame from a present peer. */
  onFrame(peerId: string, frame: ChatFrame): void;
  /** A frame of `peerId` was dropped for flooding. */
  onFlood(peerId: string): void;
  /** Whether we asked `peerId` for file `fileId`: its parts skip the frame rate limit (the
   *  file's card bounds them, and a file would stall if some were dropped). */
  wantsPart(peerId: string, fileId: string): boolean;
  /** Something the UI shows (the count of open links) changed. */
  changed(): void;
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
}

export class MeshLinks {
  private readonly links = new Map<string, Link>();
  private readonly redialTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private policy = new MeshPolicy("");
  /** Callers refused at the link bound: dialed back if the overlay comes to want them. */
  private readonly refused = new Set<string>();
  private chunkCounter = 0;
  private destroyed = false;

  constructor(private readonly host: MeshHost) {}

  /** Our peer id changed (a new Peer): the policy starts over with it. */
  setSelf(selfId: string): void {
    if (this.policy.selfId !== selfId) this.policy = new MeshPolicy(selfId);
  }

  get openCount(): number {
    let count = 0;
    for (const link of this.links.values()) if (link.open) count += 1;
    return count;
  }

  isOpen(peerId: string): boolean {
    return this.links.get(peerId)?.open === true;
  }

  /** On joining and after an outage: dial the overlay's peers (everyone, in a full mesh) with a
   *  bigger id we have no link to; the smaller ids dial us. */
  dialRoster(present: Iterable<string>): void {
    for (const peerId of this.policy.dialsOnRoster(present, new Set(this.links.keys()))) this.dial(peerId);
  }

  /** A repair round: dial the overlay's peers that are ours to dial and have no link; close
   *  the links it no longer wants (a big room). */
  repair(present: Iterable<string>): void {
    const all = [...present];
    const redialing = new Set(this.redialTimers.keys());
    for (const peerId of this.policy.repairDials(all, new Set(this.links.keys()), redialing)) this.dial(peerId);
    for (const peerId of this.policy.prune(all, this.links.keys())) this.drop(peerId);
  }

  /** Someone joined or left: dial the links that are ours to dial (a newcomer with a bigger id;
   *  in a big room the overlay moves, and callers we refused at the bound now wait for a call),
   *  close the ones it no longer wants. */
  rosterChanged(present: Iterable<string>): void {
    const all = [...present];
    for (const peerId of this.policy.dialsOnChange(all, new Set(this.links.keys()))) this.dial(peerId);
    const wanted = this.policy.wanted(all);
    for (const peerId of this.refused) if (wanted.has(peerId)) this.dial(peerId);
    this.refused.clear();
    for (const peerId of this.policy.prune(all, this.links.keys())) this.drop(peerId);
  }

  /** Where to forward a message by `author` new to our log that `cameFrom` sent (a big room). */
  forwardTo(author: string, cameFrom: string): string[] {
    const open = [...this.links].filter(([, link]) => link.open).map(([peerId]) => peerId);
    return this.policy.forwardTo(author, cameFrom, open, this.host.present());
  }

  dial(peerId: string): void {
    const peer = this.host.peer();
    if (peer === null || peer.disconnected || peerId === peer.id || this.links.has(peerId)) return;
    // peerjs returns undefined (and emits an error) when the signaling socket is down.
    const conn = peer.connect(peerId, { reliable: true, serialization: "json" }) as DataConnection | undefined;
    if (conn === undefined) return;
    this.attach(conn, true);
    this.bound();
  }

  onIncoming(conn: DataConnection): void {
    const existing = this.links.get(conn.peer);
    const state = existing === undefined ? null : { open: existing.open, dialedByUs: existing.dialedByUs };
    const others = this.links.size - (existing === undefined ? 0 : 1);
    if (!this.policy.acceptIncoming(conn.peer, state, this.host.present(), others)) {
      // Both sides dialed at once (both keep the connection dialed by the smaller id), or we
      // are at the link bound and the overlay does not link us to the caller.
      if (others >= this.policy.maxLinks) this.refused.add(conn.peer);
      conn.close();
      return;
    }
    if (existing !== undefined) this.drop(conn.peer, false);
    this.attach(conn, false);
    this.bound();
  }

  /** Close links the overlay does not want while we hold more than MAX_LINKS. */
  private bound(): void {
    const excess = this.links.size - this.policy.maxLinks;
    if (excess <= 0) return;
    for (const peerId of this.policy.prune(this.host.present(), this.links.keys()).slice(0, excess)) this.drop(peerId);
  }

  /** Present and linked to us by the overlay (what a redial needs). */
  private wanted(peerId: string): boolean {
    return this.host.isPresent(peerId) && this.policy.wanted(this.host.present()).has(peerId);
  }

  /** Send `frame` to `peerId` over its open link, chunked if it is too big for one message;
   *  false if there is no open link. */
  send(peerId: string, frame: ChatFrame): boolean {
    const link = this.links.get(peerId);
    if (link === undefined || !link.open) return false;
    for (const part of split(frame, () => `c-${this.policy.selfId}-${++this.chunkCounter}`)) {
      try {
        void link.conn.send(part);
      } catch (error) {
        console.warn(`nbchat: send to ${peerId} failed`, error);
        return false;
      }
    }
    return true;
  }

  /** Bytes waiting to go to `peerId`: in its data channel, plus messages peerjs holds back. */
  buffered(peerId: string): number {
    const link = this.links.get(peerId);
    if (link === undefined || !link.open) return 0;
    // peerjs's json connection queues past 8 MB in the channel; bufferSize counts its queue.
    const conn = link.conn as { dataChannel?: RTCDataChannel; bufferSize?: number };
    return (conn.dataChannel?.bufferedAmount ?? 0) + (conn.bufferSize ?? 0) * CHUNK_THRESHOLD_BYTES;
  }

  /** Bytes waiting to leave on `peerId`'s link (Infinity without an open link). */
  bufferedAmount(peerId: string): number {
    const link = this.links.get(peerId);
    if (link === undefined || !link.open) return Infinity;
    const conn = link.conn as DataConnection & { bufferSize?: number };
    // peerjs queues in JavaScript once the channel holds 8 MB: count that as full.
    if ((conn.bufferSize ?? 0) > 0) return Infinity;
    return conn.dataChannel?.bufferedAmount ?? 0;
  }

  /** Call `then` once `peerId`'s link has sent down to `low` bytes (or after `fallbackMs`). */
  whenDrained(peerId: string, low: number, fallbackMs: number, then: () => void): void {
    let called = false;
    const once = (): void => {
      if (called) return;
      called = true;
      clearTimeout(timer);
      channel?.removeEventListener("bufferedamountlow", once);
      then();
    };
    const timer = setTimeout(once, fallbackMs);
    const channel = this.links.get(peerId)?.conn.dataChannel;
    if (channel !== undefined && typeof channel.addEventListener === "function") {
      channel.bufferedAmountLowThreshold = low;
      channel.addEventListener("bufferedamountlow", once);
    }
  }

  /** Presence named `peerId`: the frames it sent before are handled now. */
  flushEarly(peerId: string): void {
    const link = this.links.get(peerId);
    if (link === undefined || link.early.length === 0) return;
    for (const data of link.early.splice(0)) this.onData(link, data);
  }

  /** `peerId` left the room. */
  forget(peerId: string): void {
    this.policy.forget(peerId);
    this.drop(peerId);
  }

  /** After a roster: links that never opened to peers it leaves out go. An open one is kept
   *  (it outlived a server restart, whose first roster lists only who is back so far). */
  dropUnopenedExcept(present: (peerId: string) => boolean): void {
    for (const [peerId, link] of [...this.links]) if (!present(peerId) && !link.open) this.drop(peerId);
  }

  dropAll(): void {
    for (const peerId of [...this.links.keys()]) this.drop(peerId);
  }

  destroy(): void {
    this.destroyed = true;
    for (const timer of this.redialTimers.values()) clearTimeout(timer);
    this.redialTimers.clear();
    this.dropAll();
  }

  // --- links ------------------------------------------------------------------------------

  private attach(conn: DataConnection, dialedByUs: boolean): void {
    const maxBytes = this.host.maxMessageBytes();
    const link: Link = {
      conn,
      open: false,
      dialedByUs,
      assembler: new ChunkAssembler({ maxBytes: maxChunkedBytes(maxBytes) }),
      limits: new IncomingLimits(),
      early: [],
      timer: setTimeout(() => {
        if (!link.open && this.links.get(conn.peer) === link) this.lost(conn.peer, link);
      }, DIAL_TIMEOUT_MS),
      silentTimer: null,
    };
    this.links.set(conn.peer, link);
    guardDataMessages(conn, (error) => {
      if (this.links.get(conn.peer) !== link || !this.admit(link, false)) return;
      console.warn(`nbchat: ignoring malformed frame from ${conn.peer}: ${describe(error)}`);
    });
    conn.on("open", () => {
      if (this.links.get(conn.peer) !== link) return;
      link.open = true;
      if (link.timer !== null) clearTimeout(link.timer);
      link.timer = null;
      this.policy.onLinkOpen(conn.peer);
      this.host.onOpen(conn.peer);
      this.host.changed();
    });
    conn.on("data", (data) => {
      if (this.links.get(conn.peer) === link) this.onData(link, data);
    });
    conn.on("close", () => {
      if (this.links.get(conn.peer) === link) this.lost(conn.peer, link);
    });
    conn.on("error", (error) => {
      console.warn(`nbchat: connection to ${conn.peer} in room ${this.host.room()}: ${error.message}`);
      if (this.links.get(conn.peer) === link) this.lost(conn.peer, link);
    });
    conn.on("iceStateChanged", (state) => {
      if (this.links.get(conn.peer) !== link) return;
      if (state !== "disconnected") {
        if (link.silentTimer !== null) clearTimeout(link.silentTimer);
        link.silentTimer = null;
      } else if (link.silentTimer === null) {
        link.silentTimer = setTimeout(() => {
          if (this.links.get(conn.peer) !== link) return;
          console.warn(`nbchat: link to ${conn.peer} in room ${this.host.room()} went silent; dialing again`);
          this.lost(conn.peer, link, true);
        }, SILENT_LINK_MS);
      }
    });
  }

  /** A link failed, closed or went silent while the peer may still be present. */
  private lost(peerId: string, link: Link, silent = false): void {
    this.drop(peerId);
    if (this.destroyed || this.redialTimers.has(peerId)) return;
    const delay = this.policy.onLinkLost(peerId, {
      wasOpen: link.open,
      silent,
      present: this.wanted(peerId),
      random: Math.random(),
    });
    if (delay === null) return;
    const timer = setTimeout(() => {
      this.redialTimers.delete(peerId);
      if (this.wanted(peerId)) this.dial(peerId);
    }, delay);
    this.redialTimers.set(peerId, timer);
  }

  private drop(peerId: string, notify = true): void {
    const link = this.links.get(peerId);
    if (link === undefined) return;
    this.links.delete(peerId);
    if (link.timer !== null) clearTimeout(link.timer);
    if (link.silentTimer !== null) clearTimeout(link.silentTimer);
    link.conn.close();
    if (link.open) this.host.onClosed(peerId);
    if (notify) this.host.changed();
  }

  // --- frames in --------------------------------------------------------------------------

  private onData(link: Link, data: unknown): void {
    const peerId = link.conn.peer;
    if (!this.host.isPresent(peerId)) {
      // Presence and signaling are separate sockets: the call can beat USER_CONNECTED.
      if (link.early.length < MAX_EARLY_FRAMES) link.early.push(data);
      return;
    }
    let frame = parseChatFrame(data);
    if (frame !== null && frame.type === ChatFrameType.FILE_PART && this.host.wantsPart(peerId, frame.file)) {
      this.host.onFrame(peerId, frame);
      return;
    }
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
    this.host.onFrame(peerId, frame);
  }

  /** Whether a frame from `link` is within its rate limits; warns now and then while it floods. */
  private admit(link: Link, isMessage: boolean): boolean {
    if (link.limits.accept(isMessage)) return true;
    this.host.onFlood(link.conn.peer);
    const dropped = link.limits.report();
    if (dropped !== null) {
      console.warn(`nbchat: peer ${link.conn.peer} in room ${this.host.room()} is flooding: dropped ${dropped} frames`);
    }
    return false;
  }
}
