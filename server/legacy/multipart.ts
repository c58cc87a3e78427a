import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { batchedWriteStream } from '../storage/batched-io.js';
import { EmptyFilenamePatch, multipartBoundary } from './empty-filename.js';
import { LegacyError, validationError, type ValidationItem } from './errors.js';

/** Where the `file` part goes: to a staging file, checked against its size, or nowhere. */
export type ChunkSink = { kind: 'stage'; file: string; expectedSize: number } | { kind: 'discard' };

/**
 * A request body may be twice the largest chunk and this much more (a chunk sent too large is named
 * with its size, as the original did); past that it is refused (413).
 */
const BODY_SLACK = 1024 * 1024;
const bodyBudget = (maxChunkSize: number) => 2 * maxChunkSize + BODY_SLACK;
/** After an early answer, at least this much more is read and dropped, so the client sees the answer. */
const DRAIN_FLOOR = 16 * 1024 * 1024;

/**
 * The file part as received: every byte counted and hashed, even past the expected size (the
 * original checked the hash before the size, and named the real size), but only up to the
 * expected size stored. A part longer than that leaves its staging file unfinished.
 */
export interface ChunkBody {
  size: number;
  sha256: string;
  chunkHash: string | undefined;
}

type PartResult = Omit<ChunkBody, 'chunkHash'>;

/** Streams one part: hashed and counted on the way to disk, never held whole in memory. */
function consumePart(stream: Readable, sink: ChunkSink, signal: AbortSignal): Promise<PartResult> {
  if (sink.kind === 'discard') {
    return new Promise((resolve, reject) => {
      let size = 0;
      stream.on('data', (data: Buffer) => (size += data.length));
      stream.once('error', reject);
      stream.once('end', () => resolve({ size, sha256: '' }));
    });
  }
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const out = batchedWriteStream(sink.file, { flags: 'wx' });
    let size = 0;
    let overflowed = false;
    let writeError: Error | undefined;
    // A request that ends before its part does leaves the part unfinished: close the file now.
    signal.addEventListener('abort', () => {
      out.destroy();
      reject(new Error('request ended before the file part'));
    });
    out.once('error', (error) => {
      writeError = error;
      stream.resume();
    });
    stream.on('data', (data: Buffer) => {
      size += data.length;
      hash.update(data);
      if (size > sink.expectedSize) {
        // Refused whatever follows: the rest is only counted and hashed (the request's budget bounds it).
        if (!overflowed) {
          overflowed = true;
          out.destroy();
          stream.resume();
        }
        return;
      }
      if (!writeError && !out.write(data)) {
        stream.pause();
        out.once('drain', () => stream.resume());
      }
    });
    stream.once('error', (error) => {
      out.destroy();
      reject(error);
    });
    stream.once('end', () => {
      if (overflowed) return resolve({ size, sha256: hash.digest('hex') });
      out.end(() => {
        if (writeError) reject(writeError);
        else resolve({ size, sha256: hash.digest('hex') });
      });
    });
  });
}

function isMultipart(req: IncomingMessage): boolean {
  return /^multipart\/form-data\b/i.test(req.headers['content-type'] ?? '');
}

const FILE_REQUIRED: ValidationItem = { loc: ['body', 'file'], msg: 'field required', type: 'value_error.missing' };
const missingFile = () => validationError([FILE_REQUIRED]);

/**
 * Reads a chunk request's form: the `file` part into `sink`, the optional `chunk_hash` field,
 * which may come before or after the file. A body larger than any chunk could be is refused (413)
 * without being read to its end; the caller then lets the rest drain (`discardRest`).
 */
export function readChunkForm(req: IncomingMessage, sink: ChunkSink, maxChunkSize: number): Promise<ChunkBody> {
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: req.headers,
      limits: { fields: 20, fieldSize: 4096, files: 10, parts: 30, headerPairs: 100 },
    });
  } catch {
    // FastAPI read a body of another type as a form without parts; a malformed multipart header
    // was its generic parse error.
    req.resume();
    return Promise.reject(isMultipart(req) ? new LegacyError(400, 'There was an error parsing the body') : missingFile());
  }

  return new Promise<ChunkBody>((resolve, reject) => {
    let chunkHash: string | undefined;
    let fileAsText = false;
    let hashAsFile = false;
    let filePart: Promise<PartResult> | undefined;
    let settled = false;
    const settle = (action: () => void) => {
      if (settled) return;
      settled = true;
      action();
    };
    const stop = new AbortController();
    const boundary = multipartBoundary(req.headers['content-type']);
    const patch = boundary === undefined ? undefined : new EmptyFilenamePatch(boundary);
    const fail = (error: LegacyError) => {
      if (patch) {
        req.unpipe(patch);
        patch.unpipe(parser);
      } else {
        req.unpipe(parser);
      }
      stop.abort();
      settle(() => reject(error));
    };

    parser.on('field', (name, value) => {
      if (name === 'chunk_hash') chunkHash = value;
      if (name === 'file') fileAsText = true;
    });
    parser.on('file', (name, stream, info) => {
      // A part without a filename is a text field to Starlette, whatever its type (busboy takes an
      // octet-stream part for a file).
      if (name === 'file' && info.filename === undefined) {
        fileAsText = !filePart;
        stream.resume();
        return;
      }
      // A hash sent as a file is no hash: the chunk would go unchecked. FastAPI refused it as no string.
      if (name === 'chunk_hash') hashAsFile = true;
      if (name !== 'file' || filePart) {
        stream.resume();
        return;
      }
      filePart = consumePart(stream, sink, stop.signal);
      // An error here surfaces through the parser's own 'error' or through 'close' below.
      filePart.catch(() => undefined);
    });
    parser.once('error', () => fail(new LegacyError(400, 'There was an error parsing the body')));
    parser.once('close', () => {
      // Each field's error, in the order the endpoint declares them: file, then chunk_hash.
      const errors: ValidationItem[] = [];
      if (!filePart) {
        errors.push(
          fileAsText
            ? { loc: ['body', 'file'], msg: "Expected UploadFile, received: <class 'str'>", type: 'value_error' }
            : FILE_REQUIRED,
        );
      }
      if (hashAsFile) errors.push({ loc: ['body', 'chunk_hash'], msg: 'str type expected', type: 'type_error.str' });
      if (errors.length > 0 || !filePart) {
        settle(() => reject(validationError(errors)));
        return;
      }
      filePart.then(
        (part) => settle(() => resolve({ ...part, chunkHash })),
        (error: unknown) => settle(() => reject(error)),
      );
    });
    req.once('close', () => {
      if (!req.complete) fail(new LegacyError(400, 'There was an error parsing the body'));
    });
    // A body the size of no chunk (a huge part of another name, or a chunk that is only read to be
    // dropped) is not read to its end.
    let received = 0;
    const budget = bodyBudget(maxChunkSize);
    const count = (data: Buffer) => {
      received += data.length;
      if (received <= budget) return;
      req.off('data', count);
      fail(new LegacyError(413, 'Request body too large'));
    };
    req.on('data', count);
    if (patch) req.pipe(patch).pipe(parser);
    else req.pipe(parser);
  });
}

/**
 * After an early answer, reads and drops what the client is still sending, so it can read the
 * answer on a kept-alive connection; past a bound the connection is closed instead.
 */
export function discardRest(req: IncomingMessage, maxChunkSize: number): void {
  if (req.complete) return;
  // A client that is sending still reads no answer until its body is sent (curl, most libraries):
  // closing at once would reset the connection under the answer.
  const budget = Math.max(bodyBudget(maxChunkSize), DRAIN_FLOOR);
  let dropped = 0;
  req.on('data', (data: Buffer) => {
    dropped += data.length;
    if (dropped > budget) req.socket.destroy();
  });
  req.resume();
}
