import fs from 'node:fs';
import { releaseWritten } from './chunk-release.js';

/**
 * The bytes one read or write of a file moves. A request body comes in socket reads of up to 64 KiB,
 * and each file read or write is a hand-off to libuv's thread pool and back. When the pool idles
 * between them (one upload, or a few), every hand-off wakes a sleeping thread, which costs more on a
 * virtual machine than the copy itself. Four socket reads to a write (bench/results.md, ninth
 * session): one 1 GiB PATCH ran at 1.37 × the rate for 0.80 × the CPU, 100 uploads at once at 1.17 ×
 * for 0.87 ×; 16 at once were unchanged (their writes keep the pool awake).
 */
export const IO_BATCH = 256 * 1024;

type WritevCallback = (error: NodeJS.ErrnoException | null, written: number, buffers: NodeJS.ArrayBufferView[]) => void;

/** Threads in libuv's pool, which runs file writes: with more files written at once, writes queue. */
const THREAD_POOL_SIZE = Number(process.env.UV_THREADPOOL_SIZE) || 4;

/** Batched write streams open now. */
let openWriteStreams = 0;

/**
 * Gives a written chunk's memory back (chunk-release.ts) when more files are being written than the
 * pool has threads: a chunk then waits in the queue long enough to outlive two minor GCs. With fewer,
 * a chunk is written and dead before a minor GC comes, and detaching it only cost time (one 1 GiB
 * PATCH: 0.93 × the rate at 1.15 × the CPU, tenth session).
 */
function released(buffer: NodeJS.ArrayBufferView): void {
  if (openWriteStreams > THREAD_POOL_SIZE) releaseWritten(buffer);
}

/** Tries of a writev that stores nothing, before it is an error (as Node's WriteStream tries). */
const EMPTY_WRITE_TRIES = 5;

/**
 * `fs.writev` that stores the whole batch or fails: a short write (write(2) stores what fits when the
 * disk fills, and libuv reports that part without the error that stopped it) is continued here, from
 * where it stopped. Node's WriteStream (v20, and main as of this writing) continues a short writev at
 * `this.pos`, which it has already moved past the whole batch: the rest of the batch landed past a
 * hole of zeros, and the next batch over it, while the running hash advanced over the right bytes.
 * Its `_write` continues at the right place; only its writev path has that fault.
 */
function writevWhole(fd: number, buffers: NodeJS.ArrayBufferView[], position: number | null | undefined, callback: WritevCallback): void {
  const total = buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
  let done = 0;
  let emptyTries = 0;
  const next = () => {
    // Without a position the file's own position advances with each write: the rest follows on.
    const at = typeof position === 'number' ? position + done : null;
    fs.writev(fd, rest(buffers, done), at, (error, written) => {
      if (error && error.code !== 'EAGAIN') return callback(error, done, buffers);
      done += error ? 0 : written;
      if (done >= total) {
        for (const buffer of buffers) released(buffer);
        return callback(null, done, buffers);
      }
      if (error || written === 0) {
        if (++emptyTries > EMPTY_WRITE_TRIES) {
          return callback(Object.assign(new Error(`writev stored ${done} of ${total} bytes`), { code: 'EIO' }), done, buffers);
        }
        return void setImmediate(next);
      }
      emptyTries = 0;
      next();
    });
  };
  next();
}

/** `buffers` without their first `skip` bytes. */
function rest(buffers: NodeJS.ArrayBufferView[], skip: number): NodeJS.ArrayBufferView[] {
  if (skip === 0) return buffers;
  const left: NodeJS.ArrayBufferView[] = [];
  for (const buffer of buffers) {
    if (skip >= buffer.byteLength) {
      skip -= buffer.byteLength;
      continue;
    }
    left.push(skip === 0 ? buffer : new Uint8Array(buffer.buffer, buffer.byteOffset + skip, buffer.byteLength - skip));
    skip = 0;
  }
  return left;
}

type WriteCallback = (error: NodeJS.ErrnoException | null, written: number, buffer: NodeJS.ArrayBufferView) => void;

/** `fs.write` as WriteStream calls it, releasing a chunk once it is written whole (`chunk-release.ts`). */
function writeReleasing(fd: number, buffer: NodeJS.ArrayBufferView, offset: number, length: number, position: number | null, callback: WriteCallback): void {
  fs.write(fd, buffer, offset, length, position, (error, written) => {
    if (!error && offset === 0 && written === buffer.byteLength) released(buffer);
    callback(error, written, buffer);
  });
}

/**
 * Node's fs for a WriteStream, but with `writevWhole`, and chunks released once written (all looked
 * up on each call, as the stream would).
 */
const WHOLE_WRITEV_FS = {
  open: (...args: Parameters<typeof fs.open>) => fs.open(...args),
  close: (...args: Parameters<typeof fs.close>) => fs.close(...args),
  write: writeReleasing,
  writev: writevWhole,
  fsync: (...args: Parameters<typeof fs.fsync>) => fs.fsync(...args),
};

/**
 * `fs.createWriteStream` whose writes gather IO_BATCH bytes into one `writev`. The stream is corked
 * when a write finds nothing pending and uncorked once the batch is full, so that Node's Writable
 * issues the batch at once, or when the file's opening or the write in flight is done. IO_BATCH is
 * also the high-water mark: the source pauses while a full batch is written.
 *
 * Gathered bytes are not on disk until their batch is written: `bytesWritten` counts only bytes
 * written, and `end()` (also after a client went away) writes the rest; `destroy()` drops them.
 */
export function batchedWriteStream(file: string, options: { flags: string; start?: number }): fs.WriteStream {
  const stream = fs.createWriteStream(file, { ...options, highWaterMark: IO_BATCH, fs: WHOLE_WRITEV_FS });
  openWriteStreams++;
  stream.once('close', () => openWriteStreams--);
  const write = stream.write;
  stream.write = function (this: fs.WriteStream, ...args: Parameters<fs.WriteStream['write']>): boolean {
    if (!this.writableCorked && this.writableLength === 0) this.cork();
    const accepted = write.apply(this, args);
    if (this.writableCorked && this.writableLength >= IO_BATCH) this.uncork();
    return accepted;
  } as fs.WriteStream['write'];
  return stream;
}

/** `fs.createReadStream` reading IO_BATCH bytes at a time (a read is a thread-pool hand-off too). */
export function batchedReadStream(file: string, options: { start?: number; end?: number } = {}): fs.ReadStream {
  return fs.createReadStream(file, { ...options, highWaterMark: IO_BATCH });
}
