// Builds the server for production: one ES module that plain Node runs, without the TypeScript
// loader (tsx) that `npm start` uses. Dependencies stay in node_modules (they are imported, not
// bundled), so the output must live inside the repository.
//
//   npm run build                      writes dist/tusgate.mjs, chunks beside it, and source maps
//   node dist/tusgate.mjs              runs it, configured by the environment as `npm start` is
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_OUTFILE = path.join(ROOT, 'dist', 'tusgate.mjs');

/**
 * Bundles `entry` (a path relative to the repository) into `outfile`. The demo page's browser files
 * are found relative to the bundle (client-demo/serve.ts reads `TUSGATE_BROWSER_DIR`), since a
 * bundle's `import.meta.url` is its own, not that of the module it was built from.
 */
export async function buildServer(outfile = DEFAULT_OUTFILE, entry = 'server/main.ts'): Promise<string> {
  const browserDir = path.relative(path.dirname(outfile), path.join(ROOT, 'client-demo', 'browser')).split(path.sep).join('/');
  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { [path.basename(outfile, '.mjs')]: entry },
    outdir: path.dirname(outfile),
    outExtension: { '.js': '.mjs' },
    // Modules imported only when configured (the Redis state, the S3 store and their clients) stay
    // in chunks of their own, loaded on demand. Chunks sit beside the entry, so paths relative to
    // the bundle hold in every one of them.
    splitting: true,
    chunkNames: '[name]-[hash]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    // Function and class names stay as written: some are part of output (readiness check names,
    // error types in log lines).
    keepNames: true,
    sourcemap: true,
    define: { TUSGATE_BROWSER_DIR: JSON.stringify(`${browserDir}/`) },
    logLevel: 'warning',
  });
  return outfile;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const outfile = process.argv[2] ? path.resolve(process.argv[2]) : DEFAULT_OUTFILE;
  await buildServer(outfile);
  process.stdout.write(`built ${path.relative(process.cwd(), outfile)}\n`);
}
