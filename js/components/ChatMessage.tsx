// One chat message: author, local time and sanitized Markdown body.

import * as React from "react";
import type { MarkdownRenderer } from "../markdown";
import type { ChatMessage as Message } from "../protocol";
import { Avatar } from "./Avatar";
import { FileCard } from "./FileCard";
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

/** Give every code block a Copy button (ours, made here: the sanitized HTML has no buttons). */
function useCopyButtons(body: React.RefObject<HTMLDivElement | null>, html: string): void {
  React.useEffect(() => {
    const root = body.current;
    if (root === null) return;
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

function ChatMessageView({ message, markdown, continued, isSelf, avatarUrl }: ChatMessageProps): React.ReactElement {
  const rich = message.mime !== undefined;
  const html = React.useMemo(() => (rich ? "" : markdown.render(message.text)), [markdown, message.text, rich]);
  const bodyRef = React.useRef<HTMLDivElement>(null);
  useCopyButtons(bodyRef, html);
  const when = new Date(message.time);
  const name = message.user.display_name || message.user.name || message.user.username;
  return (
    <div
      role="article"
      aria-label={`Message from ${name}`}
      className={`nbchat-message${continued ? " nbchat-message-continued" : ""}${isSelf ? " nbchat-message-self" : ""}`}
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
        {!continued && (
          <div className="nbchat-message-header">
            <span className="nbchat-message-author">{name}</span>
            <time className="nbchat-message-time" dateTime={when.toISOString()} title={fullFormat.format(when)}>
              {timeFormat.format(when)}
            </time>
          </div>
        )}
        {message.file !== undefined ? (
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
      </div>
    </div>
  );
}

export const ChatMessage = React.memo(ChatMessageView);
