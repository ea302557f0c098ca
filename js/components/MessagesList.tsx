// The message history, windowed: only rows near the viewport are in the DOM, so 10,000
// messages open and scroll smoothly. Sticks to the bottom only while the reader is there.

import * as React from "react";
import type { MarkdownRenderer } from "../markdown";
import type { ListedMessage as Message } from "../chatState";
import type { Presence } from "../protocol";
import { extendOffsets, rowAt, rowOffsets, visibleRange } from "../windowing";
import { ChatMessage, type ChatMessageProps } from "./ChatMessage";

export interface MessagesListProps {
  messages: readonly Message[];
  users: readonly Presence[];
  selfId: string | null;
  markdown: MarkdownRenderer;
  /** Set to a function that scrolls to a message, highlights and focuses it. */
  jumpRef?: React.MutableRefObject<((id: string, focus?: boolean) => void) | null>;
}

/** Guesses for rows not measured yet: a header row is taller than a continued one. */
const ESTIMATE_FIRST = 52;
const ESTIMATE_CONTINUED = 24;
const OVERSCAN_PX = 240;
const BOTTOM_SLACK_PX = 24;
/** Mounted rows start at a multiple of this (a few more rows above the overscan). */
const ROW_STEP = 16;
/** Messages from one author within this window are grouped under one header. */
const GROUP_MS = 5 * 60_000;
/** How long a message jumped to stays highlighted. */
const HIGHLIGHT_MS = 2_500;
/** Unread messages counted at most (a scan back from the newest). */
const UNREAD_CAP = 999;

/** Messages from others after `seen` (the newest one the reader saw at the bottom). */
function unreadAfter(messages: readonly Message[], seen: string | undefined, selfId: string | null): number {
  let count = 0;
  for (let i = messages.length - 1; i >= 0 && i >= messages.length - UNREAD_CAP - 1; i -= 1) {
    if (messages[i].id === seen) return count;
    if (messages[i].author !== selfId) count += 1;
  }
  return seen === undefined ? 0 : Math.min(count, UNREAD_CAP);
}

function isContinued(messages: readonly Message[], index: number): boolean {
  const previous = messages[index - 1];
  const message = messages[index];
  return (
    previous !== undefined &&
    previous.kind === undefined &&
    message.kind === undefined &&
    previous.author === message.author &&
    message.time - previous.time >= 0 &&
    message.time - previous.time < GROUP_MS
  );
}

export function MessagesList({ messages, users, selfId, markdown, jumpRef }: MessagesListProps): React.ReactElement {
  const scroller = React.useRef<HTMLDivElement>(null);
  const heights = React.useRef(new Map<string, number>());
  const atBottom = React.useRef(true);
  /** The scroll position last seen or set, to tell the reader scrolling up from the list growing. */
  const lastTop = React.useRef(0);
  const [measured, setMeasured] = React.useState(0);
  const [viewport, setViewport] = React.useState({ top: 0, height: 360 });

  const avatars = React.useMemo(() => {
    const byPeer = new Map<string, string | null>();
    for (const { peer_id, user } of users) byPeer.set(peer_id, user.avatar_url);
    return byPeer;
  }, [users]);

  // Offsets of every row; when messages were only appended (the same rows before, same
  // heights known) only the new rows are added: a live message in a 10,000-message room is
  // not a height lookup per row.
  const laidOut = React.useRef<{ messages: readonly Message[]; measured: number; offsets: Float64Array } | null>(null);
  const offsets = React.useMemo(() => {
    const heightOf = (i: number): number => {
      const known = heights.current.get(messages[i].id);
      if (known !== undefined) return known;
      return isContinued(messages, i) ? ESTIMATE_CONTINUED : ESTIMATE_FIRST;
    };
    const before = laidOut.current;
    const kept =
      before !== null &&
      before.measured === measured &&
      before.messages.length <= messages.length &&
      before.messages.length > 0 &&
      before.messages[before.messages.length - 1].id === messages[before.messages.length - 1].id &&
      before.messages[0].id === messages[0].id;
    const next = kept ? extendOffsets(before.offsets, messages.length, heightOf) : rowOffsets(messages.length, heightOf);
    laidOut.current = { messages, measured, offsets: next };
    return next;
    // `measured` changes whenever a row reports a new height.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [messages, measured]);
  const total = offsets[messages.length];
  const offsetsRef = React.useRef(offsets);
  offsetsRef.current = offsets;
  // While following the bottom, the window is the bottom: history inserted above before the
  // next frame scrolls must not mount (and render Markdown for) rows that were never seen.
  const windowTop = atBottom.current ? Math.max(0, total - viewport.height) : viewport.top;
  const range = visibleRange(offsets, windowTop, viewport.height, OVERSCAN_PX);
  // The first mounted row moves in steps of ROW_STEP: following the bottom, a new message then
  // unmounts the oldest rows once every ROW_STEP messages, not one on each (an unmount was a
  // third of a live message's commit, bench/browser_latency.py --profile).
  const start = range.start - (range.start % ROW_STEP);
  const end = range.end;

  // One ResizeObserver measures every rendered row; a row above the viewport that changes
  // height shifts the scroll position by the same amount, so what the reader sees stays put.
  const observer = React.useMemo(() => {
    if (typeof ResizeObserver === "undefined") return null;
    return new ResizeObserver((entries) => {
      const element = scroller.current;
      let changed = false;
      let shift = 0;
      const firstVisible = element !== null ? rowAt(offsetsRef.current, element.scrollTop) : 0;
      for (const entry of entries) {
        const row = entry.target as HTMLElement;
        const id = row.dataset.rowId;
        const index = Number(row.dataset.rowIndex);
        if (id === undefined) continue;
        const height = row.offsetHeight;
        const before = heights.current.get(id);
        if (before === height || height === 0) continue;
        const previous = before ?? offsetsRef.current[index + 1] - offsetsRef.current[index];
        heights.current.set(id, height);
        changed = true;
        if (index < firstVisible) shift += height - previous;
      }
      if (!changed) return;
      if (element !== null && shift !== 0 && !atBottom.current) element.scrollTop += shift;
      setMeasured((n) => n + 1);
    });
  }, []);
  React.useEffect(() => () => observer?.disconnect(), [observer]);

  const onScroll = React.useCallback(() => {
    const element = scroller.current;
    if (element === null) return;
    // Only the reader scrolling up leaves the bottom: history inserted above (or rows taller
    // than their estimate) moves the bottom away before the next frame follows it, and that
    // is not the reader leaving. Near the bottom is judged against the rows' known total.
    const offsets = offsetsRef.current;
    const total = offsets[offsets.length - 1] ?? 0;
    const top = element.scrollTop;
    const near = total - top - element.clientHeight <= BOTTOM_SLACK_PX;
    if (top < lastTop.current - 1) atBottom.current = near;
    else if (near) atBottom.current = true;
    lastTop.current = top;
    setViewport({ top: element.scrollTop, height: element.clientHeight });
  }, []);

  React.useLayoutEffect(() => {
    const element = scroller.current;
    if (element === null || typeof ResizeObserver === "undefined") return;
    const resize = new ResizeObserver(() => {
      setViewport({ top: element.scrollTop, height: element.clientHeight });
    });
    resize.observe(element);
    return () => resize.disconnect();
  }, []);

  // Follow new messages while at the bottom, and always right after we send one ourselves.
  // The new row is already in the DOM (inside the overscan); scrolling to it waits for the
  // next animation frame, so a commit never forces a layout of the page (the frame lays out
  // once, before it paints). A hidden tab has no frames: a timeout then.
  const last = messages[messages.length - 1];
  const lastSeen = React.useRef<string | undefined>(undefined);
  const follow = React.useRef<{ forced: boolean; handle: ReturnType<typeof setTimeout> | number | null }>({
    forced: false,
    handle: null,
  });
  React.useLayoutEffect(() => {
    const ownNew = last !== undefined && last.id !== lastSeen.current && last.author === selfId;
    lastSeen.current = last?.id;
    if (!(atBottom.current || ownNew)) return;
    follow.current.forced ||= ownNew;
    if (follow.current.handle !== null) return;
    const stick = (): void => {
      const element = scroller.current;
      const forced = follow.current.forced;
      follow.current = { forced: false, handle: null };
      if (element === null || !(atBottom.current || forced)) return;
      element.scrollTop = element.scrollHeight;
      atBottom.current = true;
      lastTop.current = element.scrollTop;
      setViewport({ top: element.scrollTop, height: element.clientHeight });
    };
    const visible = typeof document !== "undefined" && document.visibilityState === "visible";
    follow.current.handle =
      visible && typeof requestAnimationFrame === "function" ? requestAnimationFrame(stick) : setTimeout(stick, 0);
  }, [total, last, selfId]);
  React.useEffect(
    () => () => {
      const { handle } = follow.current;
      if (handle === null) return;
      if (typeof handle === "number" && typeof cancelAnimationFrame === "function") cancelAnimationFrame(handle);
      clearTimeout(handle as ReturnType<typeof setTimeout>);
    },
    [],
  );

  // Unread: what arrived from others since the reader last was at the bottom.
  const last2 = messages[messages.length - 1];
  const seenUpTo = React.useRef<string | undefined>(undefined);
  if (atBottom.current) seenUpTo.current = last2?.id;
  const unread = atBottom.current ? 0 : unreadAfter(messages, seenUpTo.current, selfId);
  const toBottom = (): void => {
    const element = scroller.current;
    if (element === null) return;
    atBottom.current = true;
    element.scrollTop = element.scrollHeight;
    lastTop.current = element.scrollTop;
    setViewport({ top: element.scrollTop, height: element.clientHeight });
  };

  // Jump to a message (a reply's quote): scroll it into view, highlight it, focus it.
  const [highlight, setHighlight] = React.useState<string | null>(null);
  const focusJumped = React.useRef(true);
  const messagesRef = React.useRef(messages);
  messagesRef.current = messages;
  React.useEffect(() => {
    if (jumpRef === undefined) return;
    jumpRef.current = (id: string, focus = true) => {
      focusJumped.current = focus;
      const element = scroller.current;
      const index = messagesRef.current.findIndex((m) => m.id === id);
      if (element === null || index === -1) return;
      atBottom.current = false;
      const offsets = offsetsRef.current;
      element.scrollTop = Math.max(0, offsets[index] - element.clientHeight / 3);
      lastTop.current = element.scrollTop;
      setViewport({ top: element.scrollTop, height: element.clientHeight });
      setHighlight(id);
    };
    return () => {
      jumpRef.current = null;
    };
  }, [jumpRef]);
  React.useEffect(() => {
    if (highlight === null) return;
    const row = scroller.current?.querySelector<HTMLElement>(`[data-message-id="${CSS.escape(highlight)}"]`);
    if (focusJumped.current) row?.focus({ preventScroll: true });
    const timer = setTimeout(() => setHighlight(null), HIGHLIGHT_MS);
    return () => clearTimeout(timer);
  }, [highlight, start]);

  const rows: React.ReactElement[] = [];
  for (let i = start; i < end; i += 1) {
    const message = messages[i];
    rows.push(
      <Row
        key={message.id}
        index={i}
        top={offsets[i]}
        observer={observer}
        message={message}
        markdown={markdown}
        continued={isContinued(messages, i)}
        isSelf={message.author === selfId}
        avatarUrl={avatars.get(message.author) ?? null}
        highlighted={message.id === highlight}
      />,
    );
  }

  return (
    <div className="nbchat-messages-frame">
      <div ref={scroller} className="nbchat-messages" role="log" aria-label="Messages" tabIndex={0} onScroll={onScroll}>
        {messages.length === 0 ? (
          <div className="nbchat-empty">No messages yet. Say hello!</div>
        ) : (
          <div className="nbchat-rows" style={{ height: total }}>
            {rows}
          </div>
        )}
      </div>
      {unread > 0 && (
        <button type="button" className="nbchat-unread" onClick={toBottom}>
          {unread >= UNREAD_CAP ? `${UNREAD_CAP}+` : unread} new {unread === 1 ? "message" : "messages"} ↓
        </button>
      )}
    </div>
  );
}

interface RowProps extends ChatMessageProps {
  highlighted: boolean;
  index: number;
  top: number;
  observer: ResizeObserver | null;
}

/** A positioned row that reports its height while mounted; re-renders only when its props change. */
const Row = React.memo(function Row({ index, top, observer, highlighted, ...message }: RowProps): React.ReactElement {
  const ref = React.useRef<HTMLDivElement>(null);
  React.useLayoutEffect(() => {
    const node = ref.current;
    if (node === null || observer === null) return;
    observer.observe(node);
    return () => observer.unobserve(node);
  }, [observer]);
  return (
    <div
      ref={ref}
      className={`nbchat-row${highlighted ? " nbchat-row-highlight" : ""}`}
      data-row-id={message.message.id}
      data-row-index={index}
      style={{ transform: `translateY(${top}px)` }}
    >
      <ChatMessage {...message} />
    </div>
  );
});
