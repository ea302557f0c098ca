// Keeps peerjs's own parsing of a hostile payload from throwing out of its event handler.

import type { DataConnection } from "peerjs";

/**
 * peerjs 1.5 parses every payload itself (`JSON.parse` of the UTF-8 bytes) and throws on
 * one that is not UTF-8 JSON, is `null`, or is a text frame: an uncaught error per frame,
 * beyond our rate limits. Catch those and report them as malformed frames of that peer.
 */
export function guardDataMessages(conn: DataConnection, onMalformed: (error: unknown) => void): void {
  const inner = conn as unknown as { _handleDataMessage?: (event: MessageEvent) => void };
  const handle = inner._handleDataMessage;
  if (typeof handle !== "function") return;
  inner._handleDataMessage = (event: MessageEvent) => {
    try {
      handle.call(conn, event);
    } catch (error) {
      onMalformed(error);
    }
  };
}
