// Windowing arithmetic for long lists of variable-height rows: pure, so it is tested without a DOM.

/** Prefix sums: offsets[i] is the top of row i, offsets[n] the total height. */
export function rowOffsets(count: number, heightOf: (index: number) => number): Float64Array {
  const offsets = new Float64Array(count + 1);
  for (let i = 0; i < count; i += 1) offsets[i + 1] = offsets[i] + heightOf(i);
  return offsets;
}

/** `rowOffsets(count, heightOf)` from `previous`, the offsets of the first rows (unchanged):
 *  only the rows after them are measured (a message appended to a long list is O(1) work
 *  plus a copy, not a height lookup per row). */
export function extendOffsets(previous: Float64Array, count: number, heightOf: (index: number) => number): Float64Array {
  const known = previous.length - 1;
  if (known > count) return rowOffsets(count, heightOf);
  const offsets = new Float64Array(count + 1);
  offsets.set(previous);
  for (let i = known; i < count; i += 1) offsets[i + 1] = offsets[i] + heightOf(i);
  return offsets;
}

/** Index of the row containing `y` (clamped to the rows that exist). */
export function rowAt(offsets: Float64Array, y: number): number {
  const count = offsets.length - 1;
  if (count <= 0) return 0;
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (offsets[mid] <= y) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Rows [start, end) to render for a viewport, with `overscan` pixels above and below. */
export function visibleRange(
  offsets: Float64Array,
  scrollTop: number,
  viewportHeight: number,
  overscan: number,
): { start: number; end: number } {
  const count = offsets.length - 1;
  if (count <= 0) return { start: 0, end: 0 };
  const start = rowAt(offsets, Math.max(0, scrollTop - overscan));
  const end = rowAt(offsets, scrollTop + viewportHeight + overscan) + 1;
  return { start, end: Math.min(count, end) };
}
