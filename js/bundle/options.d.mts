// Types for options.mjs.
import type { BuildOptions } from "esbuild";

export function widgetBuildOptions(mode?: { watch?: boolean }): BuildOptions;
