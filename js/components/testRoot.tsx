// For component tests (jsdom): a fresh React root in the document per test.
import type * as React from "react";
import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach } from "vitest";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

export interface TestRoot {
  /** The element the root renders into (a new one per test). */
  readonly container: HTMLDivElement;
  render(element: React.ReactElement): void;
}

/** Call at a test file's top level: each test gets a root mounted in the document, unmounted after. */
export function testRoot(): TestRoot {
  let container: HTMLDivElement | null = null;
  let root: Root | null = null;
  beforeEach(() => {
    container = document.createElement("div");
    document.body.appendChild(container);
    root = createRoot(container);
  });
  afterEach(() => {
    act(() => root?.unmount());
    container?.remove();
  });
  return {
    get container(): HTMLDivElement {
      if (container === null) throw new Error("testRoot: used outside a test");
      return container;
    },
    render(element: React.ReactElement): void {
      act(() => root?.render(element));
    },
  };
}
