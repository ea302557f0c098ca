import { describe, expect, it } from "vitest";
import { sha256 } from "./sha256";

const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const utf8 = new TextEncoder();

function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  for (let at = 0; at < length; at += 65_536) crypto.getRandomValues(out.subarray(at, Math.min(length, at + 65_536)));
  return out;
}

async function platform(data: Uint8Array<ArrayBuffer>): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
}

describe("sha256", () => {
  it("gives the standard's answers (FIPS 180-4 examples)", () => {
    expect(hex(sha256(utf8.encode("abc")))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(hex(sha256(new Uint8Array(0)))).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(hex(sha256(utf8.encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))).toBe(
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    );
  });

  it("agrees with WebCrypto at every length around the block edges, and over parts", async () => {
    for (let length = 0; length < 300; length += 1) {
      const data = randomBytes(length);
      const expected = await platform(data);
      expect(hex(sha256(data))).toBe(expected);
      const cut = length >> 1;
      expect(hex(sha256(data.subarray(0, cut), data.subarray(cut)))).toBe(expected);
    }
    const big = randomBytes(100_000);
    expect(hex(sha256(big))).toBe(await platform(big));
    // A small one after the big one (the scratch buffer is reused).
    expect(hex(sha256(utf8.encode("abc")))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});
