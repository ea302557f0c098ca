import fixture from "../tests/fixtures/sealed_cases.json";
import { describe, expect, it } from "vitest";
import { KDF_ITERATIONS, SealError, Sealer, associatedData, deriveRoomKeyBytes } from "./roomKey";

const hex = (bytes: Uint8Array): string => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (text: string) => new Uint8Array(text.match(/../g)!.map((h) => parseInt(h, 16)));
const b64 = (text: string) => new Uint8Array([...atob(text)].map((c) => c.charCodeAt(0)));

describe("room key (golden fixture shared with tests/core/test_sealed.py)", () => {
  for (const c of fixture.kdf) {
    it(`derives the fixture key: ${c.name}`, async () => {
      expect(c.iterations).toBe(KDF_ITERATIONS);
      expect(hex(await deriveRoomKeyBytes(c.passphrase, c.room_key))).toBe(c.key_hex);
    });
  }

  for (const c of fixture.seal) {
    it(`seals a known plaintext to the fixture payload: ${c.name}`, async () => {
      const sealer = await Sealer.fromBytes(fromHex(c.key_hex));
      const aad = associatedData(c.type, c.src, c.dst);
      expect(await sealer.sealBytes(new TextEncoder().encode(c.plaintext), aad, b64(c.iv))).toEqual(c.sealed);
      const payload = JSON.parse(c.plaintext);
      expect(await sealer.seal(c.type, c.src, c.dst, payload, b64(c.iv))).toEqual(c.sealed);
      expect(await sealer.open(c.type, c.src, c.dst, c.sealed)).toEqual(payload);
    });
  }

  for (const c of fixture.open_fails) {
    it(`refuses to open: ${c.name}`, async () => {
      const sealer = await Sealer.fromBytes(fromHex(c.key_hex));
      await expect(sealer.open(c.type, c.src, c.dst, c.sealed)).rejects.toBeInstanceOf(SealError);
    });
  }

  it("uses a fresh iv for every seal", async () => {
    const sealer = await Sealer.fromBytes(new Uint8Array(32));
    const [a, b] = [await sealer.seal("OFFER", "a", "b", { x: 1 }), await sealer.seal("OFFER", "a", "b", { x: 1 })];
    expect(a.iv).not.toBe(b.iv);
  });
});
