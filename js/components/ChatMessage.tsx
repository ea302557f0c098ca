// One chat message: author, local time and sanitized Markdown body.

import * as React from "react";
import type { MarkdownRenderer } from "../markdown";
import type { ListedMessage as Message } from "../chatState";
import { findMentions } from "../core/mentions";
import { Avatar } from "./Avatar";
import { ActionsContext, MessageToolbar, Reactions, SearchContext } from "./MessageActions";
import { FileCard } from "./FileCard";
import { RecordLine } from "./OffTheRecord";
import { RichBody } from "./RichBody";

export interface ChatMessageProps {
  message: Message;
  markdown: MarkdownRenderer;
  /** Same author as the previous message shortly before: omit the header. */
  continued: boolean;
  isSelf: boolean;
  avatarUrl: string | null;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** Give every code block a Copy button (ours, made here: the sanitized HTML has no buttons).
 *  A layout effect, like every effect a new message runs: a passive one made React schedule
 *  a task for it on each commit (a postMessage, ~0.1 ms of a live message's way to the DOM). */
function useCopyButtons(body: React.RefObject<HTMLDivElement | null>, html: string): void {
  React.useLayoutEffect(() => {
    const root = body.current;
    if (root === null || !html.includes("<pre")) return;
    for (const pre of root.querySelectorAll("pre")) {
      if (pre.querySelector(":scope > .nbchat-copy") !== null) continue;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "nbchat-copy";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy code");
      button.addEventListener("click", () => {
        const code = pre.querySelector("code")?.textContent ?? "";
        navigator.clipboard.writeText(code).then(
          () => {
            button.textContent = "Copied";
            setTimeout(() => (button.textContent = "Copy"), 1_500);
          },
          (error: unknown) => console.warn("nbchat: could not copy the code", error),
        );
      });
      pre.appendChild(button);
    }
  }, [body, html]);
}

/** Where `query` occurs in `text`, ignoring case. */
function occurrences(text: string, query: string): { start: number; end: number }[] {
  const found: { start: number; end: number }[] = [];
  const folded = text.toLowerCase();
  const q = query.toLowerCase();
  for (let at = folded.indexOf(q); at !== -1 && q !== ""; at = folded.indexOf(q, at + q.length)) {
    found.push({ start: at, end: at + q.length });
  }
  return found;
}

/** `html` with each occurrence of `query` in a <mark> (search results). */
function markQuery(html: string, query: string): string {
  const template = document.createElement("template");
  template.innerHTML = html;
  const walker = document.createTreeWalker(template.content, NodeFilter.SHOW_TEXT);
  const texts: Text[] = [];
  for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) texts.push(node as Text);
  for (const text of texts) {
    for (const { start, end } of occurrences(text.data, query).reverse()) {
      const tail = text.splitText(start);
      tail.splitText(end - start);
      const mark = document.createElement("mark");
      mark.className = "nbchat-search-hit";
      tail.replaceWith(mark);
      mark.appendChild(tail);
    }
  }
  return template.innerHTML;
}

/** `html` with each mention of `username` (outside code) in a <mark>, shown as `@shownAs`. */
function markMentions(html: string, username: string, shownAs: string): string {
  const template = document.createElement("template");
  template.innerHTML = html;
  const walker = document.createTreeWalker(template.content, NodeFilter.SHOW_TEXT);
  const texts: Text[] = [];
  for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) {
    if ((node.parentElement?.closest("code, pre") ?? null) === null) texts.push(node as Text);
  }
  for (const text of texts) {
    for (const { start, end } of findMentions(text.data, [username]).reverse()) {
      const tail = text.splitText(start);
      tail.splitText(end - start);
      const mark = document.createElement("mark");
      mark.className = "nbchat-mention nbchat-mention-self";
      // Shown by name (usernames may be opaque ids); the username stays in the tooltip.
      mark.title = tail.data;
      mark.textContent = `@${shownAs}`;
      tail.replaceWith(mark);
    }
  }
  return template.innerHTML;
}

function ChatMessageView(props: ChatMessageProps): React.ReactElement {
  // A room's off-the-record switch is a line in the log, not a message.
  return props.message.kind === "record" ? <RecordLine entry={props.message} /> : <MessageView {...props} />;
}

function MessageView({ message, markdown, continued, isSelf, avatarUrl }: ChatMessageProps): React.ReactElement {
  const rich = message.mime !== undefined;
  const deleted = message.deleted === true;
  const actions = React.useContext(ActionsContext);
  const self = actions?.self ?? null;
  const mentioned = self !== null && !deleted && findMentions(message.text, [self]).length > 0;
  const shownAs = mentioned && self !== null ? actions?.nameOf(self) ?? self : null;
  const search = React.useContext(SearchContext);
  const hit = search !== "" && !deleted && message.text.toLowerCase().includes(search.toLowerCase());
  const html = React.useMemo(() => {
    if (rich) return "";
    let rendered = markdown.render(message.text);
    if (self !== null && shownAs !== null) rendered = markMentions(rendered, self, shownAs);
    return hit ? markQuery(rendered, search) : rendered;
  }, [markdown, message.text, rich, self, shownAs, hit, search]);
  const bodyRef = React.useRef<HTMLDivElement>(null);
  useCopyButtons(bodyRef, html);
  const when = new Date(message.time);
  const name = message.user.display_name || message.user.name || message.user.username;
  const quote = message.quote ?? null;
  const edited = message.edited ?? null;
  const offRecord = message.off_record === true;
  // The toolbar shows only under the pointer or focus (CSS), so it is made when either first
  // comes: made for every row, its buttons and icons doubled the frame time of scrolling a
  // 10,000-message room (bench/history_scroll.py, docs/benchmarks.md).
  const [active, setActive] = React.useState(false);
  const activate = active ? undefined : () => setActive(true);
  return (
    <div
      role="article"
      aria-label={`Message from ${name}${mentioned ? ", mentions you" : ""}${offRecord ? ", off the record" : ""}`}
      tabIndex={-1}
      onMouseEnter={activate}
      onFocus={activate}
      className={`nbchat-message${continued && quote === null ? " nbchat-message-continued" : ""}${isSelf ? " nbchat-message-self" : ""}${mentioned ? " nbchat-message-mentioned" : ""}${offRecord ? " nbchat-message-off-record" : ""}`}
      data-message-id={message.id}
    >
      <div className="nbchat-message-gutter">
        {continued ? (
          <time className="nbchat-message-hover-time" dateTime={when.toISOString()} title={fullFormat.format(when)}>
            {timeFormat.format(when)}
          </time>
        ) : (
          <Avatar user={message.user} imageUrl={avatarUrl} />
        )}
      </div>
      <div className="nbchat-message-main">
        {(!continued || quote !== null) && (
          <div className="nbchat-message-header">
            <span className="nbchat-message-author">{name}</span>
            <time className="nbchat-message-time" dateTime={when.toISOString()} title={fullFormat.format(when)}>
              {timeFormat.format(when)}
            </time>
          </div>
        )}
        {quote !== null && (
          <button
            type="button"
            className="nbchat-quote"
            aria-label={`Replying to ${quote.name}: ${quote.line}. Show that message`}
            title="Show the message this answers"
            onClick={() => actions?.jumpTo(quote.id)}
          >
            <span className="nbchat-quote-author">{quote.name}</span>
            <span className={`nbchat-quote-line${quote.deleted ? " nbchat-deleted" : ""}`}>{quote.line}</span>
          </button>
        )}
        {deleted ? (
          <div className="nbchat-message-body nbchat-deleted">message deleted</div>
        ) : message.file !== undefined ? (
          <div className="nbchat-message-body">
            <FileCard id={message.id} file={message.file} sender={name} isSelf={isSelf} />
          </div>
        ) : message.mime !== undefined ? (
          <div className="nbchat-message-body">
            <RichBody mime={message.mime} text={message.text} markdown={markdown} />
          </div>
        ) : (
          /* Sanitized by markdown.render (DOMPurify, no scripts, handlers, images or frames). */
          <div className="nbchat-message-body" ref={bodyRef} dangerouslySetInnerHTML={{ __html: html }} />
        )}
        {offRecord && (
          <span className="nbchat-off-record-mark" title="Said off the record: kept nowhere">
            off the record
          </span>
        )}
        {edited !== null && !deleted && (
          <span className="nbchat-edited" title={`Edited ${fullFormat.format(new Date(edited))}`}>
            (edited)
          </span>
        )}
        <Reactions id={message.id} reactions={message.reactions ?? []} />
      </div>
      {active && <MessageToolbar message={message} name={name} />}
    </div>
  );
}

export const ChatMessage = React.memo(ChatMessageView);
