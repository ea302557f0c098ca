import { describe, expect, it } from "vitest";
import { FLOOD_WARNING_MS, IncomingLimits, MESSAGE_RATE, TokenBucket } from "./rateLimit";

describe("TokenBucket", () => {
  it("allows a burst, then the sustained rate", () => {
    let now = 0;
    const bucket = new TokenBucket(10, 5, () => now);
    expect(Array.from({ length: 7 }, () => bucket.take())).toEqual([true, true, true, true, true, false, false]);
    now += 100; // one token's worth at 10/s
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    now += 60_000; // refills only up to the burst
    expect(Array.from({ length: 6 }, () => bucket.take()).filter(Boolean).length).toBe(5);
  });
});

describe("IncomingLimits", () => {
  it("drops a flood of live messages past the burst and reports it once per interval", () => {
    let now = 0;
    const limits = new IncomingLimits(() => now);
    const accepted = Array.from({ length: 5_000 }, () => limits.accept(true)).filter(Boolean).length;
    expect(accepted).toBe(MESSAGE_RATE.burst);
    expect(limits.report()).toBe(5_000 - MESSAGE_RATE.burst);
    expect(limits.accept(true)).toBe(false);
    expect(limits.report()).toBeNull(); // not again so soon
    now += FLOOD_WARNING_MS;
    expect(limits.report()).toBe(1);
    // Other frames have their own budget: a flood of messages does not block history.
    expect(limits.accept(false)).toBe(true);
  });
});
