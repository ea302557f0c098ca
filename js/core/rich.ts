// Rich messages (docs/protocol.md §4.1): the MIME bundle a MESSAGE may carry beside its text.
// Pure, no I/O; mirrors src/nbchat/core/rich.py rule for rule, pinned by tests/fixtures/rich_cases.json.

/** A MIME bundle: type → string (images as base64, application/json as JSON text). */
export type MimeBundle = Record<string, string>;

/** The types a bundle may carry, in the order a client prefers to show them. */
export const RICH_MIME_TYPES = [
  "image/png",
  "image/jpeg",
  "image/svg+xml",
  "text/html",
  "text/latex",
  "application/json",
  "text/markdown",
  "text/plain",
] as const;
/** What a sender refuses beyond unless configured otherwise (JSON bytes of the bundle). */
export const RICH_LIMIT_BYTES = 5_000_000;
/** What a receiver accepts at most; a sender's configured limit cannot exceed it. */
export const MAX_RICH_BYTES = 20_000_000;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const WHITESPACE = /[\t\n\f\r ]+/g;
/** base64 of the first bytes of each format: "\x89PNG\r\n\x1a\n" and "\xff\xd8\xff". */
const SIGNATURES: Record<string, string> = { "image/png": "iVBORw0KGgo", "image/jpeg": "/9j/" };
const SVG = /<svg/i;

const encoder = new TextEncoder();

/** The size a bundle counts for: the UTF-8 length of its JSON. */
export function richSize(mime: MimeBundle): number {
  return encoder.encode(JSON.stringify(mime)).length;
}

function cleanEntry(kind: string, value: string): string | null {
  const signature = SIGNATURES[kind];
  if (signature !== undefined) {
    const compact = value.replace(WHITESPACE, "");
    if (compact.length % 4 !== 0 || !BASE64.test(compact) || !compact.startsWith(signature)) return null;
    return compact;
  }
  if (kind === "image/svg+xml" && !SVG.test(value)) return null;
  if (kind === "application/json") {
    try {
      JSON.parse(value);
    } catch {
      return null;
    }
  }
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The bundle `value` holds after the rules, or null if nothing rich is left or it is over `limit`. */
export function cleanMime(value: unknown, limit: number = MAX_RICH_BYTES): MimeBundle | null {
  if (!isRecord(value)) return null;
  const clean: MimeBundle = {};
  for (const kind of RICH_MIME_TYPES) {
    const entry = Object.prototype.hasOwnProperty.call(value, kind) ? value[kind] : undefined;
    if (typeof entry === "string") {
      const kept = cleanEntry(kind, entry);
      if (kept !== null) clean[kind] = kept;
    }
  }
  if (bestType(clean) === null || richSize(clean) > limit) return null;
  return clean;
}

/** The type a client shows: the first of RICH_MIME_TYPES present, text/plain aside. */
export function bestType(mime: MimeBundle): string | null {
  for (const kind of RICH_MIME_TYPES.slice(0, -1)) {
    if (Object.prototype.hasOwnProperty.call(mime, kind)) return kind;
  }
  return null;
}

/** Bytes as people read them: "9.3 MB", "5 MB", "812 KB", "17 bytes" (rounded half up). */
export function formatSize(size: number): string {
  for (const [unit, scale] of [["MB", 1_000_000], ["KB", 1_000]] as const) {
    if (size >= scale) {
      const tenths = Math.floor((size * 10 + scale / 2) / scale);
      const whole = Math.floor(tenths / 10);
      const tenth = tenths % 10;
      return tenth === 0 ? `${whole} ${unit}` : `${whole}.${tenth} ${unit}`;
    }
  }
  return `${size} bytes`;
}

/** The error a sender raises for a bundle over its limit (in bytes when rounding would show
 *  the two sizes alike). */
export function sizeError(what: string, size: number, limit: number): string {
  let shown = formatSize(size);
  let most = formatSize(limit);
  if (shown === most) {
    shown = `${size} bytes`;
    most = `${limit} bytes`;
  }
  return `${what} is ${shown}; the limit is ${most}`;
}
