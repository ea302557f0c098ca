// Seals a stock peerjs client's signaling with a room passphrase: outgoing OFFER/ANSWER/CANDIDATE
// payloads are sealed and incoming ones opened before peerjs sees them (format in roomKey.ts).
// This wraps the `Peer.socket` EventEmitter's `send` and `emit("message")`; peerjs is not forked.

import { SEALED_TYPES, SealError, type Sealer, isSealed } from "./roomKey";

/** A peer's signaling we refused: nobody can tell from it whose passphrase is wrong. */
export interface Rejection {
  peerId: string;
  type: string;
  reason: string;
}

interface ServerFrame {
  type?: unknown;
  src?: unknown;
  dst?: unknown;
  payload?: unknown;
}

/** The parts of peerjs's `Socket` (dist/bundler.mjs) we wrap. */
interface PeerjsSocket {
  send(data: ServerFrame): void;
  emit(event: string, ...args: unknown[]): boolean;
}

/** The parts of peerjs's `Peer` we use. */
interface PeerLike {
  readonly id: string;
  readonly socket: unknown;
}

/** Runs steps one after another per key (a sender or a recipient), so WebCrypto's async
 *  work never lets a CANDIDATE overtake its OFFER. */
class Chains {
  private readonly tails = new Map<string, Promise<void>>();

  get(key: string): Promise<void> | undefined {
    return this.tails.get(key);
  }

  then(key: string, step: () => Promise<void> | void): void {
    const tail = (this.tails.get(key) ?? Promise.resolve()).then(step).catch((error: unknown) => {
      console.error(`nbchat: sealed signaling step for ${key} failed`, error);
    });
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
  }
}

/**
 * Seal `peer`'s signaling with `sealer` (a promise: the key is derived while peerjs starts).
 * With `sealer` null nothing is sealed or delayed, and a sealed payload (from a peer with a
 * passphrase) is refused. Refused frames never reach peerjs: they go to `onRejected`.
 */
export function sealSignaling(
  peer: PeerLike,
  sealer: Promise<Sealer> | null,
  onRejected: (rejection: Rejection) => void,
): void {
  const socket = peer.socket as Partial<PeerjsSocket> | undefined;
  if (typeof socket?.send !== "function" || typeof socket.emit !== "function") {
    // Not peerjs 1.5's Socket: never fall back to unsealed signaling in a protected room.
    if (sealer !== null) throw new Error("nbchat: cannot seal this peerjs client's signaling");
    return;
  }
  wrap(peer, socket as PeerjsSocket, sealer, onRejected);
}

function wrap(
  peer: PeerLike,
  socket: PeerjsSocket,
  sealer: Promise<Sealer> | null,
  onRejected: (rejection: Rejection) => void,
): void {
  const send = socket.send.bind(socket);
  const emit = socket.emit.bind(socket);
  const outgoing = new Chains();
  const incoming = new Chains();

  socket.send = (data: ServerFrame): void => {
    const dst = typeof data?.dst === "string" ? data.dst : null;
    if (sealer === null || dst === null) return send(data);
    if (!SEALED_TYPES.has(String(data.type))) {
      // Keep order behind a frame to the same peer that is still being sealed.
      if (outgoing.get(dst) === undefined) send(data);
      else outgoing.then(dst, () => send(data));
      return;
    }
    outgoing.then(dst, async () => {
      const sealed = await (await sealer).seal(String(data.type), peer.id, dst, data.payload);
      send({ ...data, payload: sealed });
    });
  };

  socket.emit = (event: string, ...args: unknown[]): boolean => {
    const frame = args[0] as ServerFrame | undefined;
    const src = typeof frame?.src === "string" ? frame.src : null;
    if (event !== "message" || frame === undefined || src === null) return emit(event, ...args);
    const type = String(frame.type);
    if (!SEALED_TYPES.has(type)) {
      if (incoming.get(src) === undefined) return emit(event, frame);
      incoming.then(src, () => void emit(event, frame));
      return true;
    }
    if (sealer === null) {
      if (!isSealed(frame.payload)) return emit(event, frame);
      onRejected({ peerId: src, type, reason: "the peer sealed it with a room passphrase, and we have none" });
      return true;
    }
    incoming.then(src, async () => {
      if (!isSealed(frame.payload)) {
        onRejected({ peerId: src, type, reason: "the peer sent it unsealed: it has no room passphrase" });
        return;
      }
      let payload: Record<string, unknown>;
      try {
        payload = await (await sealer).open(type, src, peer.id, frame.payload);
      } catch (error) {
        if (!(error instanceof SealError)) throw error;
        onRejected({ peerId: src, type, reason: error.message });
        return;
      }
      emit(event, { ...frame, payload });
    });
    return true;
  };
}
