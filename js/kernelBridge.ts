// Connects one Chat widget model (the kernel side) to one ChatProxy (this browser's peer).
//
// Two users who open the same notebook share its kernel, and one page may show a widget twice,
// so several browsers can hold the same model. Exactly one of them, the *owner* elected by the
// kernel, mirrors chat state into the model and posts what Python sends with `chat.send()`.

import type { AnyModel } from "@anywidget/types";
import type { ChatProxy, ChatState } from "./ChatProxy";

export interface ChatModel {
  room: string;
  messages: WireMessage[];
  users: { peer_id: string; user: unknown }[];
  status: string;
  peer_id: string;
  _instance: string;
  _owner: string;
}

interface WireMessage {
  id: string;
  author: string;
  time: number;
  text: string;
  user: unknown;
}

/** Kernel → browser custom messages. */
type KernelMessage = { type: "send"; text: string; to: string };

/** At most one trait sync per interval: a 10,000-message list is not re-sent per keystroke. */
const MIRROR_INTERVAL_MS = 250;

export class KernelBridge {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastClaim = "";
  private readonly unsubscribe: () => void;

  constructor(
    private readonly model: AnyModel<ChatModel>,
    private readonly proxy: ChatProxy,
  ) {
    this.unsubscribe = proxy.subscribe((state) => this.onState(state));
    model.on("change:_owner", () => this.onState(proxy.state));
  }

  /** A custom message from the kernel (registered once per model, in `initialize`). */
  onCustom(content: unknown): void {
    const message = content as Partial<KernelMessage> | null;
    if (message?.type !== "send" || typeof message.text !== "string") return;
    if (message.to !== this.proxy.state.selfId) return;
    try {
      this.proxy.send(message.text);
    } catch (error) {
      console.warn(`nbchat: could not post the kernel's message in ${this.model.get("room")}`, error);
    }
  }

  dispose(): void {
    this.unsubscribe();
    if (this.timer !== null) clearTimeout(this.timer);
  }

  private onState(state: ChatState): void {
    const selfId = state.selfId;
    if (selfId === null) return;
    const owner = this.model.get("_owner");
    const present = state.users.map((u) => u.peer_id);
    // Claim when nobody owns the widget, or its owner has left the room as far as we can see.
    const ownerGone = owner !== "" && owner !== selfId && state.phase === "online" && !present.includes(owner);
    if ((owner === "" || ownerGone) && this.lastClaim !== `${owner}>${selfId}`) {
      this.lastClaim = `${owner}>${selfId}`;
      this.model.send({ type: "claim", peer_id: selfId, replaces: owner, present });
    }
    if (owner === selfId && this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.mirror(this.proxy.state);
      }, MIRROR_INTERVAL_MS);
    }
  }

  private mirror(state: ChatState): void {
    if (state.selfId === null || this.model.get("_owner") !== state.selfId) return;
    const current = this.model.get("messages");
    const last = state.messages[state.messages.length - 1];
    const lastMirrored = current[current.length - 1];
    if (current.length !== state.messages.length || lastMirrored?.id !== last?.id) {
      this.model.set(
        "messages",
        state.messages.map(({ id, author, time, text, user }) => ({ id, author, time, text, user })),
      );
    }
    this.model.set("users", state.users.map(({ peer_id, user }) => ({ peer_id, user })));
    this.model.set("status", state.status);
    this.model.set("peer_id", state.selfId);
    this.model.save_changes();
  }
}
