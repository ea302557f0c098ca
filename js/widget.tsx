// anywidget entry point: one ChatProxy per widget model, rendered by React in every view of it.

import { createRender, useModel, useModelState } from "@anywidget/react";
import type { AnyModel, AnyWidget } from "@anywidget/types";
import * as React from "react";
import { ChatProxy } from "./ChatProxy";
import { ChatBox } from "./components/ChatBox";
import { CommType, parseFromKernel, passphraseRequest } from "./core/comm";
import { type ChatModel, KernelBridge } from "./kernelBridge";
import "./styles.css";

/** A model's peer: created with its first view, shared by all views, destroyed after the last. */
interface Session {
  proxy: ChatProxy;
  bridge: KernelBridge;
  /** Saves a received file next to the notebook through the kernel. */
  saveFile: (name: string, bytes: Uint8Array) => Promise<string>;
  views: number;
  closeTimer: ReturnType<typeof setTimeout> | null;
}

interface PassphraseRequest {
  promise: Promise<string>;
  resolve: (passphrase: string) => void;
}

/** Leaving is deferred a little so a view that is re-attached (moved, re-rendered) keeps the peer. */
const LEAVE_DELAY_MS = 2_000;

function createWidget(): AnyWidget<ChatModel> {
  const sessions = new Map<string, Session>();
  /** Custom messages can arrive before the first view; they wait here. */
  const early = new Map<string, [unknown, DataView[]][]>();
  /** Room passphrases the kernel sent by comm message: never a synced trait, so never saved. */
  const passphrases = new Map<string, PassphraseRequest>();

  function passphraseFor(model: AnyModel<ChatModel>, key: string): Promise<string> {
    let request = passphrases.get(key);
    if (request === undefined) {
      let resolve: (passphrase: string) => void = () => undefined;
      const promise = new Promise<string>((r) => (resolve = r));
      request = { promise, resolve };
      passphrases.set(key, request);
      model.send(passphraseRequest());
    }
    return request.promise;
  }

  function acquire(model: AnyModel<ChatModel>): Session {
    const key = model.get("_instance");
    let session = sessions.get(key);
    if (session === undefined) {
      const passphrase = model.get("has_passphrase") === true ? passphraseFor(model, key) : null;
      const proxy = new ChatProxy({ room: model.get("room"), relayOnly: model.get("relay_only") === true, passphrase });
      const bridge = new KernelBridge(model, proxy);
      session = { proxy, bridge, saveFile: (name, bytes) => bridge.saveFile(name, bytes), views: 0, closeTimer: null };
      sessions.set(key, session);
      proxy.start();
      for (const [content, buffers] of early.get(key) ?? []) bridge.onCustom(content, buffers);
      early.delete(key);
    }
    if (session.closeTimer !== null) clearTimeout(session.closeTimer);
    session.closeTimer = null;
    session.views += 1;
    return session;
  }

  function release(key: string, session: Session): void {
    session.views -= 1;
    if (session.views > 0) return;
    session.closeTimer = setTimeout(() => {
      if (session.views > 0) return;
      sessions.delete(key);
      session.bridge.dispose();
      session.proxy.destroy();
    }, LEAVE_DELAY_MS);
  }

  function ChatWidget(): React.ReactElement {
    const model = useModel<ChatModel>();
    const [room] = useModelState<string>("room");
    const key = model.get("_instance");
    const [session, setSession] = React.useState<Session | null>(null);
    React.useEffect(() => {
      const acquired = acquire(model);
      setSession(acquired);
      return () => release(key, acquired);
    }, [model, key]);
    if (session === null) return <div className="nbchat nbchat-phase-connecting">Connecting…</div>;
    return <ChatBox proxy={session.proxy} room={room} saveFile={session.saveFile} />;
  }

  return {
    initialize({ model }) {
      const key = model.get("_instance");
      model.on("msg:custom", (content: unknown, buffers: DataView[] = []) => {
        const reply = parseFromKernel(content);
        if (reply?.type === CommType.PASSPHRASE) {
          passphrases.get(key)?.resolve(reply.passphrase);
          return;
        }
        const session = sessions.get(key);
        if (session !== undefined) session.bridge.onCustom(content, buffers);
        else early.set(key, [...(early.get(key) ?? []), [content, buffers]]);
      });
      // The model is closed (widget closed, kernel gone): leave the room with it.
      return () => {
        early.delete(key);
        passphrases.delete(key);
        const session = sessions.get(key);
        if (session === undefined) return;
        sessions.delete(key);
        if (session.closeTimer !== null) clearTimeout(session.closeTimer);
        session.bridge.dispose();
        session.proxy.destroy();
      };
    },
    render: createRender(ChatWidget),
  };
}

export default createWidget;
