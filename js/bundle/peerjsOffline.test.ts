import * as esbuild from "esbuild";
import { describe, expect, it } from "vitest";
import { widgetBuildOptions } from "./options.mjs";
import { readPeerjsModule, rewritePeerjs } from "./peerjsOffline.mjs";

// Every public endpoint peerjs 1.5 names in its module (ICE defaults, cloud server, email).
const OFF_HOST = ["stun.l.google.com", "peerjs.com", "stun:", "turn:"];

async function bundleText(): Promise<string> {
  const result = await esbuild.build({ ...widgetBuildOptions(), write: false, logLevel: "silent" });
  return result.outputFiles!.filter((f) => f.path.endsWith(".js")).map((f) => f.text).join("");
}

describe("the widget bundle", () => {
  it("names no public STUN/TURN server and no PeerJS cloud host", async () => {
    const text = await bundleText();
    expect(text).toContain("PeerJS"); // peerjs is in it…
    for (const host of ["stun.l.google.com", "peerjs.com"]) expect(text).not.toContain(host);
    // …and its module-load support probe now gets an empty ICE server list.
    expect(text).toMatch(/iceServers:\[\],sdpSemantics:"unified-plan"/);
  }, 20_000);
});

describe("rewritePeerjs", () => {
  it("removes every off-host endpoint from peerjs's module", async () => {
    const original = await readPeerjsModule();
    for (const host of OFF_HOST) expect(original).toContain(host);
    const rewritten = rewritePeerjs(original);
    expect(rewritten).not.toContain("stun.l.google.com");
    expect(rewritten).not.toMatch(/turn:\w/);
    expect(rewritten.replace(/\/\*[\s\S]*?\*\//g, "")).not.toContain("peerjs.com");
  });

  it("fails loudly when peerjs's text no longer matches", async () => {
    const original = await readPeerjsModule();
    expect(() => rewritePeerjs(original.replace("DEFAULT_CONFIG", "DEFAULTS"))).toThrow(/has peerjs changed/);
  });
});
