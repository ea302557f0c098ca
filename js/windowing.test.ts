import { describe, expect, it } from "vitest";
import { extendOffsets, rowAt, rowOffsets, visibleRange } from "./windowing";

describe("windowing", () => {
  const offsets = rowOffsets(5, (i) => (i + 1) * 10); // tops 0,10,30,60,100; total 150

  it("computes prefix offsets", () => {
    expect([...offsets]).toEqual([0, 10, 30, 60, 100, 150]);
  });

  it("extends offsets for appended rows, measuring only those", () => {
    const asked: number[] = [];
    const grown = extendOffsets(offsets, 7, (i) => (asked.push(i), (i + 1) * 10));
    expect([...grown]).toEqual([...rowOffsets(7, (i) => (i + 1) * 10)]);
    expect(asked).toEqual([5, 6]);
    expect([...extendOffsets(offsets, 3, (i) => (i + 1) * 10)]).toEqual([0, 10, 30, 60]);
  });

  it("finds the row under a y position", () => {
    expect(rowAt(offsets, 0)).toBe(0);
    expect(rowAt(offsets, 9.9)).toBe(0);
    expect(rowAt(offsets, 10)).toBe(1);
    expect(rowAt(offsets, 149)).toBe(4);
    expect(rowAt(offsets, 1e9)).toBe(4);
  });

  it("renders only the rows in view plus overscan", () => {
    expect(visibleRange(offsets, 35, 20, 0)).toEqual({ start: 2, end: 3 });
    expect(visibleRange(offsets, 35, 30, 0)).toEqual({ start: 2, end: 4 });
    expect(visibleRange(offsets, 35, 20, 100)).toEqual({ start: 0, end: 5 });
    expect(visibleRange(rowOffsets(0, () => 1), 0, 100, 10)).toEqual({ start: 0, end: 0 });
  });

  it("keeps 10,000 rows cheap", () => {
    const started = performance.now();
    const big = rowOffsets(10_000, (i) => 40 + (i % 7));
    const range = visibleRange(big, 200_000, 360, 200);
    expect(range.end - range.start).toBeLessThan(30);
    expect(performance.now() - started).toBeLessThan(50);
  });
});
