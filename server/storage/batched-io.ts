import fs from 'node:fs';

/**
 * The bytes one read or write of a file moves. A request body comes in socket reads of up to 64 KiB,
 * and each file read or write is a hand-off to libuv's thread pool and back. When the pool idles
 * between them (one upload, or a few), every hand-off wakes a sleeping thread, which costs more on a
 * virtual machine than the copy itself. Four socket reads to a write (bench/results.md, ninth
 * session): one 1 GiB PATCH ran at 1.37 × the rate for 0.80 × the CPU, 100 uploads at once at 1.17 ×
 * for 0.87 ×; 16 at once were unchanged (their writes keep the pool awake).
 */
export const IO_BATCH = 256 * 1024;

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
  const stream = fs.createWriteStream(file, { ...options, highWaterMark: IO_BATCH });
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
