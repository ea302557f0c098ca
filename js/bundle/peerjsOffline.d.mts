// Types for peerjsOffline.mjs (plain JS so that `node js/build.mjs` runs it as is).
import type { Plugin } from "esbuild";

export const REWRITES: { what: string; find: RegExp; replace: string }[];
export function rewritePeerjs(source: string): string;
export const peerjsOffline: Plugin;
export function readPeerjsModule(): Promise<string>;
