// Bundle the viewer's scripts (src/*.ts) with livekit-client into static/build/.
// Run by scripts/setup.sh; `node build.mjs --watch` rebuilds on change while developing.
import { build, context } from "esbuild";
import { readdirSync } from "node:fs";

const entryPoints = readdirSync("src")
  .filter((f) => /^[a-z][\w-]*\.(ts|js)$/.test(f))
  .map((f) => `src/${f}`);
// Also on its own (build/lib/lip_sync.js): bench/av_browser.py's page runs the viewer's
// lip-sync code, not a copy of it.
entryPoints.push("src/lib/lip_sync.ts");

const options = {
  entryPoints,
  outdir: "static/build",
  bundle: true,
  format: "esm",
  target: ["es2022"],
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  logLevel: "warning",
};

if (process.argv.includes("--watch")) {
  const ctx = await context(options);
  await ctx.watch();
} else {
  await build(options);
}
