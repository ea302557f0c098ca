import { describe, expect, it } from "vitest";
import { TURN_REFUSED, TURN_UNREACHABLE, hasTurnServer, probeTurn } from "./turnProbe";

/** A stand-in RTCPeerConnection that replays scripted ICE events after setLocalDescription. */
function fakePc(script: (emit: (type: string, event: object) => void) => void) {
  const configs: RTCConfiguration[] = [];
  let closed = false;
  const create = (config: RTCConfiguration) => {
    configs.push(config);
    const listeners = new Map<string, ((event: object) => void)[]>();
    const emit = (type: string, event: object) => (listeners.get(type) ?? []).forEach((l) => l(event));
    return {
      addEventListener: (type: string, l: (event: object) => void) => listeners.set(type, [...(listeners.get(type) ?? []), l]),
      createDataChannel: () => ({}),
      setLocalDescription: async () => {
        setTimeout(() => script(emit), 0);
      },
      close: () => {
        closed = true;
      },
    } as unknown as RTCPeerConnection;
  };
  return { create, configs, closed: () => closed };
}

const TURN = [{ urls: "turn:127.0.0.1:3478", username: "1:u", credential: "c" }];

describe("probeTurn", () => {
  it("is satisfied by a relay candidate and asks for relay-only gathering", async () => {
    const pc = fakePc((emit) => emit("icecandidate", { candidate: { type: "relay", candidate: "candidate:1 1 udp 1 127.0.0.1 50000 typ relay" } }));
    expect(await probeTurn(TURN, pc.create, 1_000)).toBeNull();
    expect(pc.configs).toEqual([{ iceServers: TURN, iceTransportPolicy: "relay" }]);
    expect(pc.closed()).toBe(true);
  });

  it("says the relay refused our credentials on a 401", async () => {
    const pc = fakePc((emit) => emit("icecandidateerror", { errorCode: 401, errorText: "Unauthorized", url: "turn:127.0.0.1:3478" }));
    expect(await probeTurn(TURN, pc.create, 1_000)).toBe(`${TURN_REFUSED} (401 Unauthorized)`);
  });

  it("says it cannot reach the relay when gathering ends without one, or nothing comes", async () => {
    const ended = fakePc((emit) => {
      emit("icecandidateerror", { errorCode: 701, errorText: "", url: "turn:127.0.0.1:3478" });
      emit("icecandidate", { candidate: null });
    });
    expect(await probeTurn(TURN, ended.create, 1_000)).toBe(TURN_UNREACHABLE);
    const silent = fakePc(() => {});
    expect(await probeTurn(TURN, silent.create, 50)).toBe(TURN_UNREACHABLE);
  });

  it("knows which ICE servers are TURN relays", () => {
    expect(hasTurnServer([])).toBe(false);
    expect(hasTurnServer([{ urls: "stun:example.test" }])).toBe(false);
    expect(hasTurnServer([{ urls: ["stun:a", "turns:b:5349"] }])).toBe(true);
  });
});
