import type { IncomingMessage } from 'node:http';

/**
 * Sets (or, with `undefined`, removes) a request header as @tus/server will read it: through srvx,
 * which reads both `headers` and `rawHeaders`. Used to hand @tus/server a header in the one
 * spelling it accepts, or to hide one it would refuse.
 */
export function replaceRequestHeader(req: IncomingMessage, name: string, value: string | undefined): void {
  const lower = name.toLowerCase();
  delete req.headers[lower];
  for (let i = req.rawHeaders.length - 2; i >= 0; i -= 2) {
    if (req.rawHeaders[i]!.toLowerCase() === lower) req.rawHeaders.splice(i, 2);
  }
  if (value === undefined) return;
  req.headers[lower] = value;
  req.rawHeaders.push(name, value);
}
