// Connects one Chat widget model (the kernel side) to one ChatProxy (this browser's peer).
//
// Two users who open the same notebook share its kernel, and one page may show a widget twice,
// so several browsers can hold the same model. Each view tells the kernel which peer it is
// (`here`), so that what a cell sends is posted by the browser that ran it; exactly one of
// them, the *owner* elected by the kernel, mirrors chat state into the model.

import type { AnyModel } from "@anywidget/types";
import type { ChatProxy } from "./ChatProxy";
import type { ChatState } from "./chatState";
import { CommType, claim, here, messagesPatch, parseFromKernel, saveFile } from "./core/comm";
import type { ChatMessage } from "./protocol";

export interface ChatModel {
  room: string;
  relay_only: boolean;
  users: { peer_id: string; user: unknown }[];
  status: string;
  peer_id: string;
  _instance: string;
  _owner: string;
  /** Whether the kernel holds a room passphrase for this chat (never the passphrase itself). */
  has_passphrase: boolean;
}

/** A mirror waits for this long a quiet, so a burst of messages costs one patch… */
const MIRROR_INTERVAL_MS = 250;
/** …but never longer than this after the first change. */
const MIRROR_MAX_WAIT_MS = 2_000;
/** Messages per patch: the first mirror of a long history goes in several comm messages. */
const PATCH_SIZE = 1_000;

export class KernelBridge {
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** When the change the pending mirror is for came. */
  private pendingSince = 0;
  private lastClaim = "";
  /** The peer id we last told the kernel this view has (null: not told yet). */
  private lastHere: string | null = null;
  /** The messages the kernel holds, in order: we send only what differs. */
  private mirrored: readonly ChatMessage[] = [];
  private readonly unsubscribe: () => void;
  /** save_file requests waiting for the kernel's answer. */
  private readonly saving = new Map<string, { resolve(path: string): void; reject(error: Error): void }>();
  private requests = 0;

  constructor(
    private readonly model: AnyModel<ChatModel>,
    private readonly proxy: ChatProxy,
  ) {
    // Tell the kernel this browser shows the widget at once (before we have an id), so that
    // what this browser's cells post waits for us rather than going through another browser.
    this.sayHere(proxy.state.selfId ?? "");
    this.unsubscribe = proxy.subscribe((state) => this.onState(state));
    model.on("change:_owner", () => this.onState(proxy.state));
  }

  /** A custom message from the kernel (registered once per model, in `initialize`). */
  onCustom(content: unknown, buffers: readonly DataView[] = []): void {
    const message = parseFromKernel(content);
    if (message?.type === CommType.SAVED) {
      const waiting = this.saving.get(message.request);
      this.saving.delete(message.request);
      if (message.error !== "") waiting?.reject(new Error(message.error));
      else waiting?.resolve(message.path);
      return;
    }
    if (message?.type === CommType.SEND_FILE && message.to === this.proxy.state.selfId) {
      const data = buffers[0];
      if (data === undefined) return;
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
      this.proxy.shareFile(new File([bytes], message.name, { type: message.mime_type })).catch((error: unknown) => {
        console.warn(`nbchat: could not share the kernel's file in ${this.model.get("room")}`, error);
      });
      return;
    }
    if (message?.type !== CommType.SEND) return;
    if (message.to !== this.proxy.state.selfId) return;
    try {
      this.proxy.send(message.text, message.mime ?? null, message.fields ?? {});
    } catch (error) {
      console.warn(`nbchat: could not post the kernel's message in ${this.model.get("room")}`, error);
    }
  }

  /** Ask the kernel to save `bytes` next to the notebook as `name` (it picks a free name);
   *  resolves with the path it wrote. The bytes cross only to this notebook's own kernel. */
  saveFile(name: string, bytes: Uint8Array): Promise<string> {
    const request = `save-${++this.requests}`;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.saving.delete(request)) reject(new Error("the kernel did not answer (is it running?)"));
      }, 60_000);
      this.saving.set(request, {
        resolve: (path) => (clearTimeout(timer), resolve(path)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      const buffer = bytes.slice().buffer;
      this.model.send(saveFile(request, name), undefined, [buffer]);
    });
  }

  dispose(): void {
    for (const waiting of this.saving.values()) waiting.reject(new Error("the chat was closed"));
    this.saving.clear();
    this.unsubscribe();
    if (this.timer !== null) clearTimeout(this.timer);
  }

  /**
   * Send the kernel the messages from the first one that differs from what it holds. Messages
   * are a custom-message patch rather than a synced trait, so 10,000 of them are sent once,
   * not on every change, and never echoed back to other browsers.
   */
  private patchMessages(state: ChatState): void {
    const messages = state.entries;
    let from = 0;
    while (from < this.mirrored.length && from < messages.length && sameForKernel(this.mirrored[from], messages[from])) {
      from += 1;
    }
    if (from === messages.length && from === this.mirrored.length) return;
    // Whole entries but their signatures (and hash-chain links): the kernel folds edits,
    // deletes, reactions and the off-the-record switch itself (core/edits). Entries off the
    // record never get here.
    const suffix = messages.slice(from).map(({ sig: _sig, prev: _prev, ...entry }) => entry as Record<string, unknown>);
    for (let start = 0; start < suffix.length || start === 0; start += PATCH_SIZE) {
      this.model.send(
        messagesPatch(from + start, suffix.slice(start, start + PATCH_SIZE), start + PATCH_SIZE >= suffix.length),
      );
    }
    this.mirrored = messages;
  }

  private sayHere(peerId: string): void {
    if (this.lastHere === peerId) return;
    this.lastHere = peerId;
    this.model.send(here(peerId));
  }

  private onState(state: ChatState): void {
    const selfId = state.selfId;
    if (selfId === null) return;
    this.sayHere(selfId);
    const owner = this.model.get("_owner");
    const present = state.users.map((u) => u.peer_id);
    // Claim when nobody owns the widget, or its owner has left the room as far as we can see.
    const ownerGone = owner !== "" && owner !== selfId && state.rosterKnown && !present.includes(owner);
    if ((owner === "" || ownerGone) && this.lastClaim !== `${owner}>${selfId}`) {
      this.lastClaim = `${owner}>${selfId}`;
      this.model.send(claim(selfId, owner, present));
    }
    if (owner === selfId) {
      // Once things are quiet for MIRROR_INTERVAL_MS (a history pouring in, newest first,
      // changes the log from near its start: mirroring it mid-way resends most of it), but
      // at least every MIRROR_MAX_WAIT_MS.
      const now = Date.now();
      if (this.timer !== null) {
        if (now - this.pendingSince >= MIRROR_MAX_WAIT_MS) return;
        clearTimeout(this.timer);
      } else {
        this.pendingSince = now;
      }
      this.timer = setTimeout(() => {
        this.timer = null;
        this.mirror(this.proxy.state);
      }, MIRROR_INTERVAL_MS);
    }
  }

  private mirror(state: ChatState): void {
    if (state.selfId === null || this.model.get("_owner") !== state.selfId) {
      this.mirrored = [];
      return;
    }
    this.patchMessages(state);
    this.model.set("users", state.users.map(({ peer_id, user }) => ({ peer_id, user })));
    this.model.set("status", state.status);
    this.model.set("peer_id", state.selfId);
    this.model.save_changes();
  }
}

/**
 * Whether the kernel's copy of a message is still right. The same id can change: the
 * author's own copy replaces a forged relay (docs/protocol.md §4), and the kernel must follow.
 */
function sameForKernel(a: ChatMessage, b: ChatMessage): boolean {
  return (
    a === b ||
    (a.id === b.id &&
      a.time === b.time &&
      a.text === b.text &&
      a.user.username === b.user.username &&
      a.user.display_name === b.user.display_name &&
      a.user.name === b.user.name)
  );
}
