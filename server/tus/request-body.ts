import type { IncomingMessage, ServerResponse } from 'node:http';
import { finished } from 'node:stream';
import type { Server as TusServer } from '@tus/server';
import { NodeRequest, sendNodeResponse } from 'srvx/node';
import { ownChunk } from '../storage/chunk-release.js';

/**
 * A request's body as the web stream @tus/server reads. Node's `Readable.toWeb`, which @tus/server
 * would use, copies every chunk into a new buffer (so that pooled buffers can be handed on); a
 * request body's chunks are not pooled, and this stream never transfers them, so they are queued as
 * they are. Ends, errors, cancellation and the bytes queued before the socket is paused (the
 * request's high-water mark) are as in `Readable.toWeb`.
 */
function bodyStream(req: IncomingMessage): ReadableStream<Uint8Array> {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let cancelled = false;
  req.pause();
  const stopWatching = finished(req, (error) => {
    stopWatching();
    // A late second error of the request must not go unheard (it would crash the process).
    req.on('error', () => {});
    if (error) {
      // As Readable.toWeb reports it: @tus/server takes an AbortError for a client gone away.
      const premature = (error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE';
      controller.error(premature ? new DOMException('The client closed the request', 'AbortError') : error);
      return;
    }
    if (!cancelled) controller.close();
  });
  req.on('data', (chunk: Buffer) => {
    ownChunk(chunk);
    controller.enqueue(chunk);
    if (controller.desiredSize! <= 0) req.pause();
  });
  return new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
      },
      pull() {
        req.resume();
      },
      cancel(reason) {
        cancelled = true;
        req.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: req.readableHighWaterMark }),
  );
}

/** `tus.handle(req, res)`, with the request's body read by `bodyStream`. */
export async function handleTus(tus: TusServer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const request = new NodeRequest({ req, res });
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    let body: ReadableStream<Uint8Array> | undefined;
    Object.defineProperty(request, 'body', { get: () => (body ??= bodyStream(req)) });
  }
  const response = await tus.handleWeb(request);
  await sendNodeResponse(res, response);
}
