// Subscription to a room's presence topic (docs/protocol.md §3), reconnecting with backoff.

import { backoffDelay } from "./backoff";
import { type PresenceFrame, parsePresenceFrame } from "./protocol";

export interface PresenceHandlers {
  onFrame(frame: PresenceFrame): void;
  /** The socket closed; it retries by itself after `retryInMs`. */
  onDown(reason: string, retryInMs: number): void;
}

export class PresenceSocket {
  private socket: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly handlers: PresenceHandlers,
    private readonly makeSocket: (url: string) => WebSocket = (url) => new WebSocket(url),
  ) {}

  open(): void {
    if (this.closed) return;
    const socket = this.makeSocket(this.url);
    this.socket = socket;
    socket.onmessage = (event: MessageEvent) => {
      let value: unknown;
      try {
        value = JSON.parse(String(event.data));
      } catch (error) {
        console.warn("nbchat: presence frame is not JSON", error);
        return;
      }
      const frame = parsePresenceFrame(value);
      if (frame === null) {
        console.warn("nbchat: ignoring unknown presence frame", value);
        return;
      }
      if (frame.type === "ROSTER") this.attempt = 0;
      this.handlers.onFrame(frame);
    };
    socket.onclose = (event: CloseEvent) => {
      if (this.socket !== socket || this.closed) return;
      this.socket = null;
      const delay = backoffDelay(this.attempt++);
      this.handlers.onDown(event.reason || `presence socket closed (${event.code})`, delay);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.open();
      }, delay);
    };
  }

  /** If waiting to reconnect, reconnect now (something else found the server reachable). */
  retryNow(): void {
    if (this.timer === null || this.socket !== null || this.closed) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.attempt = 0;
    this.open();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.socket?.close();
    this.socket = null;
  }
}
