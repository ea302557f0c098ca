// The kernel ↔ browser comm messages of the chat widget (docs/protocol.md §6): custom anywidget
// messages, not synced traits, so the history is patched once rather than echoed on every change
// and the passphrase never becomes a trait saved in the notebook. Pure; mirrors
// src/nbchat/core/comm.py, pinned by tests/fixtures/comm.json.

/** Browser → kernel: HERE, CLAIM, MESSAGES, PASSPHRASE_REQUEST, SAVE_FILE; kernel → browser: SEND,
 *  SEND_FILE, SAVED, PASSPHRASE. */
export const CommType = {
  HERE: "here",
  CLAIM: "claim",
  MESSAGES: "messages",
  PASSPHRASE_REQUEST: "passphrase?",
  SAVE_FILE: "save_file",
  SEND: "send",
  SEND_FILE: "send_file",
  SAVED: "saved",
  PASSPHRASE: "passphrase",
} as const;
export type CommType = (typeof CommType)[keyof typeof CommType];

export type HereMessage = { type: typeof CommType.HERE; peer_id: string };
export type ClaimMessage = { type: typeof CommType.CLAIM; peer_id: string; replaces: string; present: string[] };
export type MessagesPatch = {
  type: typeof CommType.MESSAGES;
  from: number;
  messages: Record<string, unknown>[];
  done: boolean;
};
export type PassphraseRequest = { type: typeof CommType.PASSPHRASE_REQUEST };
export type SendMessage = {
  type: typeof CommType.SEND;
  text: string;
  to: string;
  mime?: Record<string, unknown>;
  /** A reply's `reply_to`, an amendment's `kind`, `target`, `emoji` and `on` (the log checks them). */
  fields?: Record<string, unknown>;
};

/** What a kernel's `send` may ask of the entry beyond its text. */
export const ENTRY_FIELDS = ["reply_to", "kind", "target", "emoji", "on"] as const;
/** The file's bytes are the message's first binary buffer. */
export type SendFileMessage = { type: typeof CommType.SEND_FILE; name: string; mime_type: string; to: string };
export type PassphraseMessage = { type: typeof CommType.PASSPHRASE; passphrase: string };
/** The file's bytes are the message's first binary buffer. */
export type SaveFileMessage = { type: typeof CommType.SAVE_FILE; request: string; name: string };
export type SavedMessage = { type: typeof CommType.SAVED; request: string; path: string; error: string };
export type FromBrowser = HereMessage | ClaimMessage | MessagesPatch | PassphraseRequest | SaveFileMessage;
export type FromKernel = SendMessage | SendFileMessage | SavedMessage | PassphraseMessage;

/** A browser in the room offers to own the widget (replacing `replaces`, if gone). */
/** A view says which peer it is in the room ("" until it has an id); the kernel learns from
 *  the message's session which browser that is, and posts that browser's cells through it. */
export function here(peerId: string): HereMessage {
  return { type: CommType.HERE, peer_id: peerId };
}

export function claim(peerId: string, replaces: string, present: string[]): ClaimMessage {
  return { type: CommType.CLAIM, peer_id: peerId, replaces, present };
}

/** The owner browser replaces the kernel's messages from index `start` on; `done` is false
 *  while more patches of the same update follow. */
export function messagesPatch(start: number, messages: Record<string, unknown>[], done: boolean): MessagesPatch {
  return { type: CommType.MESSAGES, from: start, messages, done };
}

export function passphraseRequest(): PassphraseRequest {
  return { type: CommType.PASSPHRASE_REQUEST };
}

/** The kernel asks the browser `to` to post `text` to the room (a rich message with its MIME
 *  bundle `mime`, text the fallback). */
export function send(
  text: string,
  to: string,
  mime?: Record<string, unknown> | null,
  fields?: Record<string, unknown> | null,
): SendMessage {
  const message: SendMessage = { type: CommType.SEND, text, to };
  if (mime !== undefined && mime !== null) message.mime = mime;
  if (fields !== undefined && fields !== null && Object.keys(fields).length > 0) {
    message.fields = Object.fromEntries(
      Object.entries(fields).filter(([key]) => (ENTRY_FIELDS as readonly string[]).includes(key)),
    );
  }
  return message;
}

/** The kernel asks the browser `to` to share a file (the message's first buffer) with the room. */
export function sendFile(name: string, mimeType: string, to: string): SendFileMessage {
  return { type: CommType.SEND_FILE, name, mime_type: mimeType, to };
}

/** A browser asks the kernel to save a received file (the first buffer) next to the notebook. */
export function saveFile(request: string, name: string): SaveFileMessage {
  return { type: CommType.SAVE_FILE, request, name };
}

/** The kernel's answer to save_file: where the file went, or why it could not. */
export function saved(request: string, path = "", error = ""): SavedMessage {
  return { type: CommType.SAVED, request, path, error };
}

export function passphrase(value: string): PassphraseMessage {
  return { type: CommType.PASSPHRASE, passphrase: value };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A browser's comm message, normalized, or null if it is not one. */
export function parseFromBrowser(value: unknown): FromBrowser | null {
  if (!isRecord(value)) return null;
  switch (value.type) {
    case CommType.HERE:
      return typeof value.peer_id === "string" ? here(value.peer_id) : null;
    case CommType.CLAIM: {
      const { peer_id: peerId, replaces, present } = value;
      if (typeof peerId !== "string" || peerId === "" || !Array.isArray(present)) return null;
      return claim(
        peerId,
        typeof replaces === "string" ? replaces : "",
        present.filter((p): p is string => typeof p === "string"),
      );
    }
    case CommType.MESSAGES: {
      const start = value.from;
      const batch = value.messages;
      if (typeof start !== "number" || !Number.isSafeInteger(start) || start < 0 || !Array.isArray(batch)) return null;
      return messagesPatch(start, batch.filter(isRecord), value.done !== false);
    }
    case CommType.PASSPHRASE_REQUEST:
      return passphraseRequest();
    case CommType.SAVE_FILE:
      return typeof value.request === "string" && typeof value.name === "string" ? saveFile(value.request, value.name) : null;
    default:
      return null;
  }
}

/** A kernel's comm message, normalized, or null if it is not one. */
export function parseFromKernel(value: unknown): FromKernel | null {
  if (!isRecord(value)) return null;
  switch (value.type) {
    case CommType.SEND:
      return typeof value.text === "string" && typeof value.to === "string"
        ? send(value.text, value.to, isRecord(value.mime) ? value.mime : null, isRecord(value.fields) ? value.fields : null)
        : null;
    case CommType.SAVED:
      return typeof value.request === "string"
        ? saved(value.request, typeof value.path === "string" ? value.path : "", typeof value.error === "string" ? value.error : "")
        : null;
    case CommType.SEND_FILE:
      return typeof value.name === "string" && typeof value.mime_type === "string" && typeof value.to === "string"
        ? sendFile(value.name, value.mime_type, value.to)
        : null;
    case CommType.PASSPHRASE:
      return typeof value.passphrase === "string" ? passphrase(value.passphrase) : null;
    default:
      return null;
  }
}
