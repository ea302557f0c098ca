// Before relying on a TURN relay, ask it for an allocation once, so that a wrong secret or
// an unreachable relay shows in words instead of as a chat whose links never open.
//
// A throwaway RTCPeerConnection with the session's ICE servers and relay-only policy gathers
// candidates for one data channel: a relay candidate means the relay works; an
// `icecandidateerror` says why not (401 = our credentials were refused, 701 = no answer).
// Same wording as the Python peer's TurnRefused / TurnUnreachable.

export const TURN_PROBE_TIMEOUT_MS = 5_000;
export const TURN_REFUSED = "the TURN relay refused our credentials";
export const TURN_UNREACHABLE = "cannot reach the TURN relay";
export const NO_TURN_SERVER = "relay-only connections need a TURN relay, and the server configures none";
/** STUN error codes meaning "your credentials are not accepted" (RFC 8489 §14.8). */
const AUTH_ERRORS = new Set([401, 403, 431, 438]);

export type CreatePeerConnection = (config: RTCConfiguration) => RTCPeerConnection;

export function hasTurnServer(servers: readonly RTCIceServer[]): boolean {
  return servers.some((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]).some((u) => /^turns?:/.test(u)));
}

/** null when the relay gave us a relayed address, else a sentence for the reader. */
export async function probeTurn(
  iceServers: RTCIceServer[],
  createPc: CreatePeerConnection = (config) => new RTCPeerConnection(config),
  timeoutMs: number = TURN_PROBE_TIMEOUT_MS,
): Promise<string | null> {
  const pc = createPc({ iceServers, iceTransportPolicy: "relay" });
  const errors: { code: number; text: string; url: string }[] = [];
  try {
    return await new Promise<string | null>((resolve) => {
      const verdict = (): string => {
        const refused = errors.find((e) => AUTH_ERRORS.has(e.code));
        if (refused !== undefined) return `${TURN_REFUSED} (${refused.code} ${refused.text})`.replace(/ \)$/, ")");
        return TURN_UNREACHABLE;
      };
      const timer = setTimeout(() => resolve(verdict()), timeoutMs);
      const done = (result: string | null): void => {
        clearTimeout(timer);
        resolve(result);
      };
      pc.addEventListener("icecandidate", (event) => {
        const candidate = (event as RTCPeerConnectionIceEvent).candidate;
        if (candidate === null) done(verdict()); // gathering ended without a relayed address
        else if (candidate.type === "relay" || / typ relay /.test(candidate.candidate)) done(null);
      });
      pc.addEventListener("icecandidateerror", (event) => {
        const error = event as RTCPeerConnectionIceErrorEvent;
        errors.push({ code: error.errorCode, text: error.errorText ?? "", url: error.url ?? "" });
        // A refusal is final; an unreachable relay may still answer on another URL.
        if (AUTH_ERRORS.has(error.errorCode)) done(verdict());
      });
      pc.createDataChannel("nbchat-turn-probe");
      pc.setLocalDescription().catch((error: unknown) => done(`${TURN_UNREACHABLE} (${String(error)})`));
    });
  } finally {
    pc.close();
  }
}
