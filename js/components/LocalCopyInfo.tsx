// A footer line: how much of the room this computer keeps (IndexedDB), and a button to clear it.

import * as React from "react";
import { type LocalCopyStats, MAX_STORED_MESSAGES } from "../storage";

export interface LocalCopyInfoProps {
  stats: LocalCopyStats | null;
  onClear(): void;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** One formatter: `toLocaleString` makes one per call (~0.1 ms), and the stats change with
 *  every message stored. */
const COUNT = new Intl.NumberFormat("en-US");
const KEPT_TITLE =
  "This room's messages kept in this browser (IndexedDB), so a reload shows them before any peer " +
  `answers; the newest ${COUNT.format(MAX_STORED_MESSAGES)} are kept. Others keep their own copies.`;

function LocalCopyInfoView({ stats, onClear }: LocalCopyInfoProps): React.ReactElement | null {
  if (stats === null) return null;
  const count = COUNT.format(stats.messages);
  return (
    <div className="nbchat-local-copy" role="group" aria-label="Local copy">
      <span className="nbchat-local-copy-text" title={KEPT_TITLE}>
        Stored on this computer: {count} {stats.messages === 1 ? "message" : "messages"} · {formatBytes(stats.bytes)}
      </span>
      <button
        type="button"
        className="nbchat-local-copy-clear"
        onClick={onClear}
        disabled={stats.messages === 0}
        title="Delete this room's messages from this browser's storage (peers keep theirs)"
      >
        Clear
      </button>
    </div>
  );
}

/** Re-rendered only when the stats change (number formatting is not free on every message). */
export const LocalCopyInfo = React.memo(LocalCopyInfoView);
