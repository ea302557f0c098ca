// Keeps a room's recent messages in localStorage so a reload while alone still shows history.

import type { ChatMessage } from "./protocol";

const PREFIX = "nbchat:v1:log:";
/** localStorage is shared with JupyterLab (about 5 MB per origin): keep our share modest. */
const MAX_CHARS = 1_500_000;

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

  /** Store the newest messages that fit the budget (oldest are dropped first). */
  save(messages: readonly ChatMessage[]): void {
    if (this.storage === null) return;
    let budget = MAX_CHARS;
    let start = messages.length;
    while (start > 0) {
      const cost = JSON.stringify(messages[start - 1]).length + 1;
      if (cost > budget) break;
      budget -= cost;
      start -= 1;
    }
    const text = JSON.stringify(messages.slice(start));
    try {
      this.storage.setItem(this.key, text);
    } catch (error) {
      // Quota exceeded: history still syncs from peers, only the offline copy is lost.
      console.warn(`nbchat: could not store the log for ${this.key}`, error);
    }
  }
}
