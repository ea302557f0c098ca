// Keeps a room's recent messages in localStorage so a reload while alone still shows history.

import type { ChatMessage } from "./protocol";

const PREFIX = "nbchat:v1:log:";
/** localStorage is shared with JupyterLab (about 5 MB per origin): keep our share modest. */
const MAX_CHARS = 1_500_000;
/** A message this big (a figure, a table) is skipped when it does not fit; a small one ends the copy. */
const BIG_MESSAGE_CHARS = 100_000;

export class LogStore {
  private readonly key: string;

  constructor(
    scope: string,
    private readonly storage: Storage | null = typeof localStorage === "undefined" ? null : localStorage,
  ) {
    this.key = PREFIX + scope;
  }

  load(): unknown[] {
    if (this.storage === null) return [];
    const text = this.storage.getItem(this.key);
    if (text === null) return [];
    try {
      const value: unknown = JSON.parse(text);
      return Array.isArray(value) ? value : [];
    } catch (error) {
      console.warn(`nbchat: dropping unreadable stored log ${this.key}`, error);
      this.storage.removeItem(this.key);
      return [];
    }
  }

  /** Store the newest messages that fit the budget (oldest are dropped first). A message
   *  too big for what is left (a shared figure) is left out rather than ending the copy:
   *  peers send it again through the room sync. */
  save(messages: readonly ChatMessage[]): void {
    if (this.storage === null) return;
    let budget = MAX_CHARS;
    const kept: ChatMessage[] = [];
    for (let i = messages.length - 1; i >= 0; i -= 1) {
      const cost = JSON.stringify(messages[i]).length + 1;
      if (cost > budget) {
        if (cost > BIG_MESSAGE_CHARS) continue;
        break;
      }
      budget -= cost;
      kept.push(messages[i]);
    }
    const text = JSON.stringify(kept.reverse());
    try {
      this.storage.setItem(this.key, text);
    } catch (error) {
      // Quota exceeded: history still syncs from peers, only the offline copy is lost.
      console.warn(`nbchat: could not store the log for ${this.key}`, error);
    }
  }
}
