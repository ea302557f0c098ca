// Per-connection limits on incoming frames: a peer flooding the mesh costs us little.
// Pure, time injected (ms); mirrors src/nbchat/core/ratelimit.py, pinned by tests/fixtures/ratelimit.json.

/** A token bucket: `rate` tokens per second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Take one token; false (and nothing taken) when the bucket is empty. */
  take(): boolean {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * Live chat messages are human-paced (a bot's burst fits in the burst); other frames
 * (history batches, chunks, syncs) come in bursts when a connection opens.
 */
export const MESSAGE_RATE = { rate: 20, burst: 200 };
export const FRAME_RATE = { rate: 200, burst: 2_000 };
/** At most one warning per connection this often while it floods. */
export const FLOOD_WARNING_MS = 5_000;

/** The incoming limits of one connection, and a count of what it dropped. */
export class IncomingLimits {
  private readonly messages: TokenBucket;
  private readonly frames: TokenBucket;
  private dropped = 0;
  private warnedAt = -Infinity;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.messages = new TokenBucket(MESSAGE_RATE.rate, MESSAGE_RATE.burst, now);
    this.frames = new TokenBucket(FRAME_RATE.rate, FRAME_RATE.burst, now);
  }

  /** Whether to accept a frame; `isMessage` for live `message` frames. */
  accept(isMessage: boolean): boolean {
    if ((isMessage ? this.messages : this.frames).take()) return true;
    this.dropped += 1;
    return false;
  }

  /** Frames dropped since the last report, when a report is due (else null). */
  report(): number | null {
    const now = this.now();
    if (this.dropped === 0 || now - this.warnedAt < FLOOD_WARNING_MS) return null;
    const dropped = this.dropped;
    this.dropped = 0;
    this.warnedAt = now;
    return dropped;
  }
}
