// A shared file's card: name, size, type and sender, a progress bar while it travels, then a
// Download link (a blob URL made in this page once the SHA-256 matched) and, for images, a preview.

import * as React from "react";
import type { FileMeta } from "../core/files";
import { formatSize } from "../core/rich";
import type { FileShare, Transfer } from "../fileShare";
import { PaperclipIcon } from "./Icons";

export const FilesContext = React.createContext<FileShare | null>(null);
/** Saves a received file next to the notebook through its kernel (null: no kernel to ask). */
export const SaveContext = React.createContext<((name: string, bytes: Uint8Array) => Promise<string>) | null>(null);

function useTransfer(files: FileShare | null, id: string): Transfer | undefined {
  return React.useSyncExternalStore(
    React.useCallback((notify: () => void) => (files === null ? () => undefined : files.subscribe(notify)), [files]),
    () => files?.transfer(id),
  );
}

const STATE_TEXT: Record<Transfer["state"], string> = {
  sending: "Shared from this browser",
  waiting: "Waiting for the sender…",
  receiving: "Receiving…",
  verifying: "Checking…",
  complete: "Received",
  cancelled: "Cancelled",
  failed: "Failed",
  unavailable: "Not available",
};

export interface FileCardProps {
  id: string;
  file: FileMeta;
  sender: string;
  isSelf: boolean;
}

function FileCardView({ id, file, sender, isSelf }: FileCardProps): React.ReactElement {
  const files = React.useContext(FilesContext);
  const save = React.useContext(SaveContext);
  const transfer = useTransfer(files, id);
  const [saved, setSaved] = React.useState<string | null>(null);
  const [saving, setSaving] = React.useState(false);
  const onSave = async (): Promise<void> => {
    if (save === null || transfer?.url == null) return;
    setSaving(true);
    try {
      // A blob URL made in this page: reading it back is local, no request leaves the page.
      const bytes = new Uint8Array(await (await fetch(transfer.url)).arrayBuffer());
      setSaved(`Saved as ${await save(file.name, bytes)}`);
    } catch (error) {
      setSaved(`Not saved: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      setSaving(false);
    }
  };
  const state = transfer?.state ?? (isSelf ? "unavailable" : "waiting");
  const done = transfer?.done ?? 0;
  const percent = file.size === 0 ? 100 : Math.floor((100 * Math.min(done, file.size)) / file.size);
  const moving = state === "waiting" || state === "receiving" || state === "verifying";
  const canCancel = moving || (state === "sending" && isSelf);
  const canRetry = !isSelf && (state === "cancelled" || state === "failed" || state === "unavailable");
  return (
    <div className={`nbchat-file nbchat-file-${state}`} role="group" aria-label={`File ${file.name}`} data-state={state}>
      {transfer?.preview != null && <img className="nbchat-file-preview" src={transfer.preview} alt={`Preview of ${file.name}`} />}
      <div className="nbchat-file-row">
        <span className="nbchat-file-icon" aria-hidden="true">
          <PaperclipIcon size={20} />
        </span>
        <div className="nbchat-file-info">
          <div className="nbchat-file-name" title={file.name}>
            {file.name}
          </div>
          <div className="nbchat-file-meta">
            {formatSize(file.size)} · {file.type} · from {sender}
          </div>
          <div className="nbchat-file-state" role="status">
            {STATE_TEXT[state]}
            {moving && state !== "waiting" ? ` ${percent}%` : ""}
            {transfer?.error != null && state !== "complete" ? ` — ${transfer.error}` : ""}
            {saved !== null ? ` — ${saved}` : ""}
          </div>
        </div>
        <div className="nbchat-file-actions">
          {transfer?.url != null && (state === "complete" || state === "sending") && (
            <a className="nbchat-file-download" href={transfer.url} download={file.name} aria-label={`Download ${file.name}`}>
              Download
            </a>
          )}
          {save !== null && state === "complete" && (
            <button
              type="button"
              className="nbchat-file-save"
              onClick={() => void onSave()}
              disabled={saving}
              aria-label={`Save ${file.name} next to the notebook`}
              title="Save it in the notebook's folder, through this notebook's kernel"
            >
              Save
            </button>
          )}
          {canCancel && (
            <button type="button" className="nbchat-file-cancel" onClick={() => files?.cancel(id)} aria-label={isSelf ? `Stop sharing ${file.name}` : `Cancel ${file.name}`}>
              {isSelf ? "Stop sharing" : "Cancel"}
            </button>
          )}
          {canRetry && (
            <button type="button" className="nbchat-file-retry" onClick={() => files?.retry(id)} aria-label={`Try ${file.name} again`}>
              Retry
            </button>
          )}
        </div>
      </div>
      {moving && (
        <div
          className="nbchat-file-progress"
          role="progressbar"
          aria-label={`Progress of ${file.name}`}
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={percent}
        >
          <div className="nbchat-file-progress-bar" style={{ width: `${percent}%` }} />
        </div>
      )}
    </div>
  );
}

export const FileCard = React.memo(FileCardView);
