// Files shared peer to peer (docs/protocol.md §4.2, rules in core/files.ts): the sender keeps
// the bytes in memory and streams them on request (file-get → file-part…), paced by the data
// channel's buffer so a cancel takes effect at once; receivers reassemble, check size and
// SHA-256, and only then offer a Download (a blob URL made here). Never through the server.

import {
  FILE_LIMIT_BYTES,
  FILE_PART_BYTES,
  FileAssembler,
  type FileMeta,
  InvalidPart,
  cleanFileName,
  filePart,
  partCount,
} from "./core/files";
import { type ChatFrame, ChatFrameType } from "./core/frames";
import { formatSize } from "./core/rich";
import type { ChatMessage } from "./protocol";

export type TransferState = "sending" | "waiting" | "receiving" | "verifying" | "complete" | "cancelled" | "failed" | "unavailable";

/** What the UI shows for one file card. */
export interface Transfer {
  state: TransferState;
  /** Bytes received (or, for our own file, the most any peer has been sent). */
  done: number;
  size: number;
  /** A blob URL of the verified file (receivers), or of our own file. */
  url: string | null;
  /** A blob URL for an inline preview when the bytes are a PNG, JPEG, GIF or WebP image. */
  preview: string | null;
  error: string | null;
}

export interface FileShareHost {
  selfId(): string | null;
  /** Send on the open link to `peerId`; false if there is none. */
  send(peerId: string, frame: ChatFrame): boolean;
  isOpen(peerId: string): boolean;
  /** Bytes waiting to go out on the link to `peerId` (its data channel and peerjs's queue). */
  buffered(peerId: string): number;
}

/** Keep about this much in flight per link: enough to fill it, little enough to stop at once. */
const BUFFER_HIGH = 1_000_000;
const PACE_MS = 5;

const IMAGE_SIGNATURES: [string, number[]][] = [
  ["image/png", [0x89, 0x50, 0x4e, 0x47]],
  ["image/jpeg", [0xff, 0xd8, 0xff]],
  ["image/gif", [0x47, 0x49, 0x46, 0x38]],
  ["image/webp", [0x52, 0x49, 0x46, 0x46]],
];

/** The image type the bytes really are, or null: the declared type is never trusted. */
export function sniffImage(bytes: Uint8Array): string | null {
  for (const [type, signature] of IMAGE_SIGNATURES) {
    if (signature.every((b, i) => bytes[i] === b)) {
      if (type === "image/webp" && String.fromCharCode(...bytes.subarray(8, 12)) !== "WEBP") continue;
      return type;
    }
  }
  return null;
}

/** Whether progress from `before` to `now` bytes of `size` shows (a whole percent more):
 *  a 40 MB file is 3,700 parts, and a render for each slowed the transfer down. */
function visiblyMoved(before: number, now: number, size: number): boolean {
  return size === 0 || Math.floor((100 * now) / size) !== Math.floor((100 * before) / size);
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The card and the fallback text for `file` (read into `bytes`). */
export async function describeFile(file: { name: string; type: string }, bytes: Uint8Array): Promise<{ meta: FileMeta; text: string }> {
  const name = cleanFileName(file.name);
  const meta: FileMeta = {
    name,
    size: bytes.length,
    type: /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/.test(file.type.toLowerCase()) ? file.type.toLowerCase() : "application/octet-stream",
    sha256: await sha256Hex(bytes),
  };
  return { meta, text: `📎 ${name} (${formatSize(bytes.length)})` };
}

interface Outgoing {
  bytes: Uint8Array;
  cancelled: boolean;
  /** Peers being streamed to: set to false to stop one. */
  streams: Map<string, { stopped: boolean }>;
}

interface Incoming {
  author: string;
  meta: FileMeta;
  assembler: FileAssembler | null;
}

export class FileShare {
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly incoming = new Map<string, Incoming>();
  private readonly transfers = new Map<string, Transfer>();
  private readonly listeners = new Set<() => void>();
  private destroyed = false;

  constructor(
    private readonly host: FileShareHost,
    /** The largest file we accept. */
    readonly limit: number = FILE_LIMIT_BYTES,
  ) {}

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The state of the card of message `id` (a new object whenever it changes). */
  transfer(id: string): Transfer | undefined {
    return this.transfers.get(id);
  }

  /** Our own file, posted as message `message`: keep the bytes to stream on request. */
  offer(message: ChatMessage, bytes: Uint8Array): void {
    this.outgoing.set(message.id, { bytes, cancelled: false, streams: new Map() });
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
    const image = sniffImage(bytes);
    const preview = image !== null ? URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: image })) : null;
    this.set(message.id, { state: "sending", done: 0, size: bytes.length, url, preview, error: null });
  }

  /** Messages were added to the log: ask the authors of new file cards for the bytes. */
  onMessages(messages: readonly ChatMessage[]): void {
    const self = this.host.selfId();
    for (const message of messages) {
      if (message.file === undefined || message.author === self || this.incoming.has(message.id)) continue;
      if (this.outgoing.has(message.id)) continue;
      this.incoming.set(message.id, { author: message.author, meta: message.file, assembler: null });
      if (message.file.size > this.limit) {
        this.set(message.id, this.blank(message.file.size, "failed", `over this room's limit of ${formatSize(this.limit)}`));
      } else {
        this.request(message.id);
      }
    }
  }

  /** A link opened: files whose author was away can be asked for now. */
  onLinkOpen(peerId: string): void {
    for (const [id, entry] of this.incoming) {
      const state = this.transfers.get(id)?.state;
      if (entry.author === peerId && (state === "unavailable" || state === "receiving" || state === "waiting")) this.request(id);
    }
  }

  onLinkClosed(peerId: string): void {
    for (const [id, entry] of this.incoming) {
      const transfer = this.transfers.get(id);
      if (entry.author === peerId && transfer !== undefined && (transfer.state === "receiving" || transfer.state === "waiting")) {
        this.set(id, { ...transfer, state: "unavailable", error: "the sender went away; it resumes when they are back" });
      }
    }
    for (const entry of this.outgoing.values()) {
      const stream = entry.streams.get(peerId);
      if (stream !== undefined) stream.stopped = true;
      entry.streams.delete(peerId);
    }
  }

  /** Whether a file-part from `peerId` is one we asked for (it bypasses the frame rate limit:
   *  its size is bounded by the card). */
  wantsPart(peerId: string, fileId: string): boolean {
    const entry = this.incoming.get(fileId);
    return entry !== undefined && entry.author === peerId && entry.assembler !== null;
  }

  onFrame(peerId: string, frame: ChatFrame): void {
    switch (frame.type) {
      case ChatFrameType.FILE_GET: {
        const own = this.outgoing.get(frame.file);
        if (own === undefined || own.cancelled) {
          this.host.send(peerId, { type: ChatFrameType.FILE_CANCEL, file: frame.file });
          return;
        }
        void this.stream(frame.file, own, peerId, frame.from ?? 0);
        return;
      }
      case ChatFrameType.FILE_CANCEL: {
        const own = this.outgoing.get(frame.file);
        const stream = own?.streams.get(peerId);
        if (stream !== undefined) stream.stopped = true;
        const entry = this.incoming.get(frame.file);
        if (entry !== undefined && entry.author === peerId) {
          entry.assembler = null;
          const transfer = this.transfers.get(frame.file);
          if (transfer !== undefined && transfer.state !== "complete") {
            this.set(frame.file, { ...transfer, state: "cancelled", error: "the sender stopped sharing it" });
          }
        }
        return;
      }
      case ChatFrameType.FILE_PART: {
        const entry = this.incoming.get(frame.file);
        if (entry === undefined || entry.author !== peerId || entry.assembler === null) return;
        try {
          entry.assembler.feed(frame.index, frame.count, frame.data);
        } catch (error) {
          if (!(error instanceof InvalidPart)) throw error;
          this.fail(frame.file, entry, `a bad part from the sender (${error.message})`);
          return;
        }
        const transfer = this.transfers.get(frame.file);
        if (entry.assembler.done) {
          const bytes = entry.assembler.result();
          entry.assembler = null;
          this.set(frame.file, { ...this.blank(entry.meta.size, "verifying"), done: bytes.length });
          void this.verify(frame.file, entry, bytes);
        } else if (transfer !== undefined && (transfer.state !== "receiving" || visiblyMoved(transfer.done, entry.assembler.received, entry.meta.size))) {
          this.set(frame.file, { ...transfer, state: "receiving", done: entry.assembler.received });
        }
        return;
      }
      default:
        return;
    }
  }

  /** Stop: our own file is no longer offered to anyone; someone else's stops arriving. */
  cancel(id: string): void {
    const own = this.outgoing.get(id);
    if (own !== undefined) {
      own.cancelled = true;
      for (const [peerId, stream] of own.streams) {
        stream.stopped = true;
        this.host.send(peerId, { type: ChatFrameType.FILE_CANCEL, file: id });
      }
      own.streams.clear();
      own.bytes = new Uint8Array(0);
      const transfer = this.transfers.get(id);
      if (transfer !== undefined) this.set(id, { ...transfer, state: "cancelled", error: "you stopped sharing it" });
      return;
    }
    const entry = this.incoming.get(id);
    if (entry === undefined) return;
    if (entry.assembler !== null) this.host.send(entry.author, { type: ChatFrameType.FILE_CANCEL, file: id });
    entry.assembler = null;
    const transfer = this.transfers.get(id);
    if (transfer !== undefined && transfer.state !== "complete") this.set(id, { ...transfer, state: "cancelled", error: "cancelled" });
  }

  /** Ask again for a cancelled or failed file. */
  retry(id: string): void {
    if (this.incoming.has(id)) this.request(id);
  }

  destroy(): void {
    this.destroyed = true;
    for (const own of this.outgoing.values()) for (const stream of own.streams.values()) stream.stopped = true;
    for (const transfer of this.transfers.values()) {
      if (transfer.url !== null) URL.revokeObjectURL(transfer.url);
      if (transfer.preview !== null) URL.revokeObjectURL(transfer.preview);
    }
    this.listeners.clear();
  }

  // --- internals --------------------------------------------------------------------------

  private blank(size: number, state: TransferState, error: string | null = null): Transfer {
    return { state, done: 0, size, url: null, preview: null, error };
  }

  /** Ask the author for the file, or for the rest of it after a dropped link. */
  private request(id: string): void {
    const entry = this.incoming.get(id);
    if (entry === undefined) return;
    if (!this.host.isOpen(entry.author)) {
      const held = this.transfers.get(id);
      this.set(id, { ...this.blank(entry.meta.size, "unavailable", "the sender is not connected"), done: held?.done ?? 0 });
      return;
    }
    entry.assembler ??= new FileAssembler(entry.meta.size);
    const from = entry.assembler.nextMissing;
    this.set(id, { ...this.blank(entry.meta.size, from > 0 ? "receiving" : "waiting"), done: entry.assembler.received });
    this.host.send(entry.author, from > 0 ? { type: ChatFrameType.FILE_GET, file: id, from } : { type: ChatFrameType.FILE_GET, file: id });
  }

  private fail(id: string, entry: Incoming, reason: string): void {
    if (entry.assembler !== null) this.host.send(entry.author, { type: ChatFrameType.FILE_CANCEL, file: id });
    entry.assembler = null;
    console.warn(`nbchat: file ${entry.meta.name} from ${entry.author}: ${reason}`);
    this.set(id, this.blank(entry.meta.size, "failed", reason));
  }

  private async verify(id: string, entry: Incoming, bytes: Uint8Array): Promise<void> {
    const digest = await sha256Hex(bytes);
    if (this.destroyed) return;
    if (digest !== entry.meta.sha256) {
      this.fail(id, entry, "its SHA-256 does not match the card");
      return;
    }
    // Offered as bytes, never rendered as the type the sender claimed.
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
    const image = sniffImage(bytes);
    const preview = image !== null ? URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: image })) : null;
    this.set(id, { state: "complete", done: bytes.length, size: bytes.length, url, preview, error: null });
  }

  private async stream(id: string, own: Outgoing, peerId: string, from: number): Promise<void> {
    const previous = own.streams.get(peerId);
    if (previous !== undefined) previous.stopped = true; // asked again: start over
    const stream = { stopped: false };
    own.streams.set(peerId, stream);
    const count = partCount(own.bytes.length);
    for (let index = from; index < count; index += 1) {
      while (this.host.buffered(peerId) > BUFFER_HIGH && !stream.stopped && !this.destroyed) {
        await new Promise((resolve) => setTimeout(resolve, PACE_MS));
      }
      if (stream.stopped || own.cancelled || this.destroyed) return;
      if (!this.host.send(peerId, { type: ChatFrameType.FILE_PART, file: id, index, count, data: filePart(own.bytes, index) })) {
        stream.stopped = true;
        break;
      }
      const sent = Math.min(own.bytes.length, (index + 1) * FILE_PART_BYTES);
      const transfer = this.transfers.get(id);
      if (transfer !== undefined && sent > transfer.done && visiblyMoved(transfer.done, sent, own.bytes.length)) {
        this.set(id, { ...transfer, done: sent });
      }
    }
    if (own.streams.get(peerId) === stream) own.streams.delete(peerId);
  }

  private set(id: string, transfer: Transfer): void {
    const previous = this.transfers.get(id);
    if (previous !== undefined) {
      if (previous.url !== null && previous.url !== transfer.url) URL.revokeObjectURL(previous.url);
      if (previous.preview !== null && previous.preview !== transfer.preview) URL.revokeObjectURL(previous.preview);
    }
    this.transfers.set(id, transfer);
    for (const listener of this.listeners) listener();
  }
}
