import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Router, type Request, type Response } from 'express';
import type { DemoConfig } from './browser/types.js';
import { withOtherNames } from '../server/uploads/content-type.js';

// The demo page is bundled by esbuild's JS API in memory, on the first request for it, rather than
// by a build step: `npm ci && npm start` is all a user runs, nothing stale can be served after a
// `git pull`, and no install script has to be trusted (npm may be run with --ignore-scripts).
// A build takes well under a second; servers and tests that never serve /demo/ never pay for it.

/**
 * Set (relative to the bundle's URL) when the server runs as a bundle (scripts/build.ts), whose
 * `import.meta.url` is not this file's.
 */
declare const TUSGATE_BROWSER_DIR: string | undefined;
const BROWSER_DIR =
  typeof TUSGATE_BROWSER_DIR === 'string'
    ? fileURLToPath(new URL(TUSGATE_BROWSER_DIR, import.meta.url))
    : path.join(path.dirname(fileURLToPath(import.meta.url)), 'browser');

/**
 * Everything comes from this origin. Two exceptions, each for one need: `'wasm-unsafe-eval'` lets
 * the hashing worker compile hash-wasm's WebAssembly SHA-256 (it does not allow JavaScript eval),
 * and `blob:`/`data:` images are Uppy's file thumbnails and its stylesheet's icons.
 */
export const DEMO_CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  type: string;
  body: Buffer;
}

const etags = new WeakMap<Asset, string>();
function etagOf(asset: Asset): string {
  let etag = etags.get(asset);
  if (!etag) etags.set(asset, (etag = `"${createHash('sha256').update(asset.body).digest('base64url').slice(0, 27)}"`));
  return etag;
}

/** The bundle depends only on files in the repository, so one build serves every app in the process. */
let bundle: Promise<Map<string, Asset>> | undefined;

async function build(): Promise<Map<string, Asset>> {
  // Loaded here, not with the server: a process that never serves the page never holds esbuild.
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: {
      app: path.join(BROWSER_DIR, 'main.ts'),
      'hash-worker': path.join(BROWSER_DIR, 'hash-worker.ts'),
    },
    bundle: true,
    format: 'iife',
    target: 'es2020',
    minify: true,
    write: false,
    outdir: '/demo',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  const assets = new Map<string, Asset>();
  for (const file of result.outputFiles) {
    const name = path.basename(file.path);
    const type = name.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8';
    assets.set(name, { type, body: Buffer.from(file.contents) });
  }
  const html = await fs.readFile(path.join(BROWSER_DIR, 'index.html'));
  assets.set('index.html', { type: 'text/html; charset=utf-8', body: html });
  return assets;
}

/** Builds the page once; a failed build is retried on the next request instead of being kept. */
export function demoAssets(): Promise<Map<string, Asset>> {
  bundle ??= build().catch((error: unknown) => {
    bundle = undefined;
    throw error;
  });
  return bundle;
}

export interface DemoOptions {
  maxFileSize: number;
  allowedTypes: readonly string[];
  /** Development mode: the page fetches its token from /demo/token instead of asking for one. */
  devMode: boolean;
  /** FILES_PUBLIC: when false the page fetches a finished file with its token instead of linking to it. */
  filesPublic: boolean;
}


export function demoRouter(options: DemoOptions): Router {
  const router = Router({ strict: true });
  const send = (req: Request, res: Response, asset: Asset) => {
    // An ETag lets a reload revalidate instead of downloading the bundle again (the app makes none).
    res.set({ 'Content-Security-Policy': DEMO_CSP, 'Cache-Control': 'no-cache', 'Referrer-Policy': 'no-referrer', ETag: etagOf(asset) });
    if (req.fresh) return void res.status(304).end();
    res.type(asset.type).send(asset.body);
  };

  router.get('/demo', (_req, res) => res.redirect(301, '/demo/'));
  router.get('/demo/config', (_req, res) => {
    const body: DemoConfig = {
      endpoint: '/files/',
      maxFileSize: options.maxFileSize,
      allowedTypes: [...options.allowedTypes],
      acceptedTypes: withOtherNames(options.allowedTypes),
      devMode: options.devMode,
      filesPublic: options.filesPublic,
    };
    res.set('Cache-Control', 'no-store').json(body);
  });
  router.get(['/demo/', '/demo/:asset'], async (req, res, next) => {
    const name = (req.params as { asset?: string }).asset ?? 'index.html';
    let assets: Map<string, Asset>;
    try {
      assets = await demoAssets();
    } catch (error) {
      next(error);
      return;
    }
    const asset = assets.get(name);
    if (!asset) return next();
    send(req, res, asset);
  });
  return router;
}
