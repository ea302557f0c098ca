// A room passphrase's key and the sealed payload format (WebCrypto). The rules are written once
// in src/nbchat/peer/sealed.py and pinned by tests/fixtures/sealed_cases.json in both suites.

export const SEALED_VERSION = "nbchat-v1";
export const SEALED_TYPES: ReadonlySet<string> = new Set(["OFFER", "ANSWER", "CANDIDATE"]);
/** OWASP's 2023 figure for PBKDF2-HMAC-SHA256; ~0.2 s in a browser, paid once per join. */
export const KDF_ITERATIONS = 600_000;
const SALT_PREFIX = "nbchat-room-key-v1|";
const AAD_PREFIX = "nbchat-sealed-v1|";
const IV_BYTES = 12;

export interface SealedPayload {
  sealed: typeof SEALED_VERSION;
  iv: string;
  data: string;
}

/** A payload that cannot be accepted: wrong passphrase, tampered, or not sealed at all. */
export class SealError extends Error {
  override name = "SealError";
}

const encoder = new TextEncoder();
/** Bytes WebCrypto accepts (not a view of a SharedArrayBuffer). */
type Bytes = Uint8Array<ArrayBuffer>;

/** The 32 key bytes everyone with `passphrase` in room `roomKey` shares (PBKDF2-HMAC-SHA256). */
export async function deriveRoomKeyBytes(
  passphrase: string,
  roomKey: string,
  iterations: number = KDF_ITERATIONS,
): Promise<Bytes> {
  if (passphrase === "") throw new Error("an empty passphrase protects nothing");
  const material = await crypto.subtle.importKey("raw", encoder.encode(passphrase.normalize("NFC")), "PBKDF2", false, [
    "deriveBits",
  ]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: encoder.encode(SALT_PREFIX + roomKey), iterations },
    material,
    256,
  );
  return new Uint8Array(bits);
}

export function associatedData(kind: string, src: string, dst: string): Bytes {
  return encoder.encode(`${AAD_PREFIX}${kind}|${src}|${dst}`);
}

export function isSealed(payload: unknown): payload is SealedPayload {
  return typeof payload === "object" && payload !== null && (payload as { sealed?: unknown }).sealed === SEALED_VERSION;
}

/** Seals and opens signaling payloads with one room key. */
export class Sealer {
  private constructor(private readonly key: CryptoKey) {}

  static async fromBytes(bytes: Bytes): Promise<Sealer> {
    const key = await crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt", "decrypt"]);
    return new Sealer(key);
  }

  static async forRoom(passphrase: string, roomKey: string): Promise<Sealer> {
    return Sealer.fromBytes(await deriveRoomKeyBytes(passphrase, roomKey));
  }

  async sealBytes(plaintext: Bytes, aad: Bytes, iv?: Bytes): Promise<SealedPayload> {
    const nonce = iv ?? crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const data = await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, this.key, plaintext);
    return { sealed: SEALED_VERSION, iv: toBase64(nonce), data: toBase64(new Uint8Array(data)) };
  }

  async openBytes(sealed: unknown, aad: Bytes): Promise<Bytes> {
    if (!isSealed(sealed)) throw new SealError("the payload is not sealed");
    if (typeof sealed.iv !== "string" || typeof sealed.data !== "string") {
      throw new SealError("a sealed payload needs iv and data strings");
    }
    const iv = fromBase64(sealed.iv);
    const data = fromBase64(sealed.data);
    if (iv.length !== IV_BYTES) throw new SealError("a sealed payload's iv must be 12 bytes");
    try {
      const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, this.key, data);
      return new Uint8Array(plain);
    } catch {
      // WebCrypto's OperationError carries no detail: the tag did not match.
      throw new SealError("authentication failed (wrong passphrase, or changed in transit)");
    }
  }

  seal(kind: string, src: string, dst: string, payload: unknown, iv?: Bytes): Promise<SealedPayload> {
    return this.sealBytes(encoder.encode(JSON.stringify(payload)), associatedData(kind, src, dst), iv);
  }

  async open(kind: string, src: string, dst: string, sealed: unknown): Promise<Record<string, unknown>> {
    const plain = await this.openBytes(sealed, associatedData(kind, src, dst));
    let payload: unknown;
    try {
      payload = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plain));
    } catch (error) {
      throw new SealError(`a sealed payload holds no JSON: ${String(error)}`);
    }
    if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
      throw new SealError("a sealed payload must hold a JSON object");
    }
    return payload as Record<string, unknown>;
  }
}

function toBase64(bytes: Bytes): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64(text: string): Bytes {
  // Strict like Python's b64decode(validate=True): atob alone accepts spaces and missing padding.
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    throw new SealError("bad base64 in a sealed payload");
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
