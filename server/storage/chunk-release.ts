/**
 * Gives a request body chunk's memory back as soon as the chunk is on disk.
 *
 * Each chunk of a request body is a buffer of its own (up to 64 KiB), held while it waits for its
 * batch and for the thread pool. With many uploads at once that wait outlasts two minor GCs, so V8
 * moves the chunk to its old generation, whose dead buffers are freed only by a full GC; with 100
 * uploads at once they piled up to 60–70 MiB between full GCs (bench/results.md, tenth session). A
 * chunk written is detached here instead: its memory moves to a new, unreferenced buffer that the
 * next minor GC frees.
 *
 * Only chunks marked by `ownChunk` are released: request body chunks, which no one reads once they
 * are written (the running hash and checksums read them as the write is issued). Code that keeps a
 * request body chunk beyond its write must copy it. The file writer (batched-io.ts) releases them
 * only when many files are written at once, the case above.
 */
const owned = new WeakSet<ArrayBufferLike>();

const wholeBuffer = (chunk: Uint8Array) => chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;

/** Marks a request body chunk as read by nobody once it is written. */
export function ownChunk(chunk: Uint8Array): void {
  if (wholeBuffer(chunk)) owned.add(chunk.buffer);
}

/** Frees the memory of a chunk marked by `ownChunk`, now written in full; other chunks are left as they are. */
export function releaseWritten(chunk: NodeJS.ArrayBufferView): void {
  const buffer = chunk.buffer;
  if (!owned.has(buffer) || !(chunk instanceof Uint8Array) || !wholeBuffer(chunk)) return;
  owned.delete(buffer);
  try {
    structuredClone(buffer, { transfer: [buffer as ArrayBuffer] });
  } catch {
    // A buffer that cannot be detached is left to the GC, as any other.
  }
}
