// The body of a rich message: its best representation (core/rich), rendered without trusting it.
// Images and SVG are shown by <img> from blob URLs made here (an <img> never runs a script or
// fetches what an SVG names); HTML goes through the Markdown sanitizer; LaTeX and JSON are
// shown as source. Nothing here makes a request for anything a message names.

import * as React from "react";
import { fromBase64 } from "../core/files";
import { type MimeBundle, bestType } from "../core/rich";
import type { MarkdownRenderer } from "../markdown";

export interface RichBodyProps {
  mime: MimeBundle;
  /** The message's text: shown if nothing in the bundle can be. */
  text: string;
  markdown: MarkdownRenderer;
}

/** A blob URL for `data` while the component is mounted. */
function useBlobUrl(data: BlobPart | null, type: string): string | null {
  const [url, setUrl] = React.useState<string | null>(null);
  React.useEffect(() => {
    if (data === null) return undefined;
    const made = URL.createObjectURL(new Blob([data], { type }));
    setUrl(made);
    return () => URL.revokeObjectURL(made);
  }, [data, type]);
  return url;
}

function RichImage({ kind, data, alt }: { kind: string; data: string; alt: string }): React.ReactElement {
  const bytes = React.useMemo<BlobPart | null>(() => {
    if (kind === "image/svg+xml") return data;
    try {
      return fromBase64(data) as Uint8Array<ArrayBuffer>;
    } catch {
      return null;
    }
  }, [kind, data]);
  const url = useBlobUrl(bytes, kind);
  return url === null ? (
    <span className="nbchat-rich-image nbchat-rich-loading" role="img" aria-label={alt} />
  ) : (
    <img className="nbchat-rich-image" src={url} alt={alt} data-mime={kind} />
  );
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function RichBodyView({ mime, text, markdown }: RichBodyProps): React.ReactElement {
  const kind = bestType(mime);
  const alt = mime["text/plain"] ?? text;
  const html = React.useMemo(() => {
    if (kind === "text/html") return markdown.renderHtml(mime[kind]);
    if (kind === "text/markdown") return markdown.render(mime[kind]);
    return null;
  }, [kind, mime, markdown]);
  if (kind === "image/png" || kind === "image/jpeg" || kind === "image/svg+xml") {
    return <RichImage kind={kind} data={mime[kind]} alt={alt} />;
  }
  if (html !== null) {
    // Sanitized by markdown.renderHtml / render (DOMPurify: no scripts, styles, handlers or images).
    return <div className={`nbchat-rich nbchat-rich-${kind === "text/html" ? "html" : "markdown"}`} dangerouslySetInnerHTML={{ __html: html }} />;
  }
  if (kind === "text/latex" || kind === "application/json") {
    const source = kind === "text/latex" ? mime[kind] : prettyJson(mime[kind]);
    return (
      <figure className={`nbchat-rich nbchat-rich-source`} data-mime={kind}>
        <figcaption>{kind === "text/latex" ? "LaTeX" : "JSON"}</figcaption>
        <pre>
          <code>{source}</code>
        </pre>
      </figure>
    );
  }
  return <div className="nbchat-rich" dangerouslySetInnerHTML={{ __html: markdown.render(text) }} />;
}

export const RichBody = React.memo(RichBodyView);
