// Bundle the browser-test pages (app.jsx: LiveKit's agents hooks; transparent.js: the
// transparent avatar module) into build/. Run by scripts/setup.sh.
import { build } from "esbuild";

await build({
  entryPoints: ["app.jsx", "transparent.js"],
  outdir: "build",
  bundle: true,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  minify: true,
  logLevel: "warning",
});
