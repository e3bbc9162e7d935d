import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

// The console is built into dist/console and served by Imago at /console/
// (src/server/console.ts). Preact via esbuild's automatic JSX runtime: no plugin needed.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  publicDir: 'public',
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: fileURLToPath(new URL('../dist/console-static', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // the module-preload polyfill would be one more script; every supported browser has modulepreload
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    sourcemap: false,
  },
});
