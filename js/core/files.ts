// Files shared peer to peer (docs/protocol.md §4.2): the card a MESSAGE carries, file names and
// the parts the bytes travel in. Pure, no I/O; mirrors src/nbchat/core/files.py rule for rule,
// pinned by tests/fixtures/files.json.

/** A shared file's card. */
export interface FileMeta {
  name: string;
  size: number;
  type: string;
  sha256: string;
}

/** The largest file a peer sends or accepts unless configured otherwise. */
export const FILE_LIMIT_BYTES = 50_000_000;
/** Bytes per `file-part`: its base64 (14,400 characters) keeps the frame unchunked. */
export const FILE_PART_BYTES = 10_800;
/** The longest file name kept, in code points. */
export const MAX_FILE_NAME = 200;

// eslint-disable-next-line no-control-regex
/** Control characters, bidirectional overrides and the characters Windows forbids in a name. */
const UNSAFE = /[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069<>:"|?*]/g;
const TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A `file-part` that does not fit the file it claims to belong to. */
export class InvalidPart extends Error {}

/** A name safe to offer for download: no directories, no control characters. */
export function cleanFileName(name: string): string {
  const parts = name.split(/[/\\]/);
  let base = (parts[parts.length - 1] ?? "").replace(UNSAFE, "").replace(/^[. ]+/, "").replace(/ +$/, "");
  base = Array.from(base).slice(0, MAX_FILE_NAME).join("").replace(/ +$/, "");
  return base === "" ? "file" : base;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The card `value` holds after the rules, or null. */
export function cleanFileMeta(value: unknown, limit: number = FILE_LIMIT_BYTES): FileMeta | null {
  if (!isRecord(value)) return null;
  const { name, size, type, sha256 } = value;
  if (typeof name !== "string" || typeof sha256 !== "string" || !SHA256.test(sha256)) return null;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0 || size > limit) return null;
  const kind = typeof type === "string" ? type.toLowerCase() : "";
  return {
    name: cleanFileName(name),
    size,
    type: TYPE.test(kind) ? kind : "application/octet-stream",
    sha256,
  };
}

/** How many `file-part` frames carry `size` bytes (an empty file is one empty part). */
export function partCount(size: number): number {
  return Math.max(1, Math.ceil(size / FILE_PART_BYTES));
}

export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array {
  if (text.length % 4 !== 0 || !BASE64.test(text)) throw new InvalidPart("not base64");
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The base64 `data` of part `index` of `data`. */
export function filePart(data: Uint8Array, index: number): string {
  return toBase64(data.subarray(index * FILE_PART_BYTES, (index + 1) * FILE_PART_BYTES));
}

/** Collects one file's parts in any order; `done` once every part is in. */
export class FileAssembler {
  readonly count: number;
  private readonly parts = new Map<number, Uint8Array>();
  private bytes = 0;

  constructor(readonly size: number) {
    this.count = partCount(size);
  }

  /** Bytes received so far. */
  get received(): number {
    return this.bytes;
  }

  get done(): boolean {
    return this.parts.size === this.count;
  }

  /** The first part not received yet (`count` when done): where a resumed file-get starts. */
  get nextMissing(): number {
    let index = 0;
    while (this.parts.has(index)) index += 1;
    return index;
  }

  /** Add part `index`; throws InvalidPart for one that does not fit (a repeat is ignored). */
  feed(index: number, count: number, data: string): void {
    if (count !== this.count || !(index >= 0 && index < count)) {
      throw new InvalidPart(`part ${index} of ${count} does not fit a file of ${this.count} parts`);
    }
    if (this.parts.has(index)) return;
    let raw: Uint8Array;
    try {
      raw = fromBase64(data);
    } catch {
      throw new InvalidPart(`part ${index} is not base64`);
    }
    const expected = Math.min(FILE_PART_BYTES, this.size - index * FILE_PART_BYTES);
    if (raw.length !== expected) throw new InvalidPart(`part ${index} has ${raw.length} bytes, not ${expected}`);
    this.parts.set(index, raw);
    this.bytes += raw.length;
  }

  /** The whole file (every part must be in). */
  result(): Uint8Array {
    if (!this.done) throw new InvalidPart("the file is not complete");
    const out = new Uint8Array(this.size);
    for (let i = 0; i < this.count; i += 1) out.set(this.parts.get(i) as Uint8Array, i * FILE_PART_BYTES);
    return out;
  }
}
