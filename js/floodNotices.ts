// The "sending too fast" notices: which peers we drop frames of, until a while after the last.

/** How long the notice stays after a flooding peer's last dropped frame. */
export const FLOOD_NOTICE_MS = 10_000;

export class FloodNotices {
  private readonly floods = new Map<string, { dropped: number; until: number }>();
  private timer: ReturnType<typeof setTimeout> | null = null;

  /** `onChange` runs when the list of notices (or a count worth showing) changes. */
  constructor(private readonly onChange: () => void) {}

  /** Count a dropped frame of `peerId`. */
  note(peerId: string): void {
    const now = Date.now();
    const flood = this.floods.get(peerId);
    if (flood === undefined) {
      this.floods.set(peerId, { dropped: 1, until: now + FLOOD_NOTICE_MS });
      this.onChange();
    } else {
      flood.dropped += 1;
      flood.until = now + FLOOD_NOTICE_MS;
      if (flood.dropped % 50 === 0) this.onChange();
    }
    if (this.timer === null) this.scheduleExpiry();
  }

  /** Flooding peers and how many of their frames were dropped. */
  entries(): [string, number][] {
    return [...this.floods].map(([peerId, flood]) => [peerId, flood.dropped]);
  }

  destroy(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.floods.clear();
  }

  private scheduleExpiry(): void {
    const next = Math.min(...[...this.floods.values()].map((f) => f.until));
    this.timer = setTimeout(() => {
      this.timer = null;
      const now = Date.now();
      for (const [peerId, flood] of this.floods) if (flood.until <= now) this.floods.delete(peerId);
      this.onChange();
      if (this.floods.size > 0) this.scheduleExpiry();
    }, Math.max(0, next - Date.now()));
  }
}
