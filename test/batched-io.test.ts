import { randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { KvStore, Upload } from '@tus/utils';
import { Upload as TusUpload } from '@tus/utils';
import { expect } from 'chai';
import { batchedWriteStream, IO_BATCH } from '../server/storage/batched-io.js';
import { ownChunk } from '../server/storage/chunk-release.js';
import { TusgateFileStore } from '../server/storage/file-store.js';

function memoryKv(): KvStore<Upload> {
  const map = new Map<string, Upload>();
  return {
    get: async (key) => map.get(key),
    set: async (key, value) => void map.set(key, value),
    delete: async (key) => void map.delete(key),
    list: async () => [...map.keys()],
  };
}

/** Socket-sized pieces of `data`, as a request body arrives. */
function body(data: Buffer, piece = 64 * 1024): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += piece) pieces.push(data.subarray(at, at + piece));
  return Readable.from(pieces);
}

describe('batched file writes (server/storage/batched-io.ts)', () => {
  let dir: string;
  let store: TusgateFileStore;
  const realWritev = fs.writev;

  beforeEach(async () => {
    dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'tusgate-batched-'));
    store = new TusgateFileStore(dir, memoryKv());
  });
  afterEach(async () => {
    fs.writev = realWritev;
    await fs.promises.rm(dir, { recursive: true, force: true });
  });

  it('writes the rest of a batch the file system took only part of where it belongs (a short writev, as near a full disk)', async () => {
    const id = 'shortwrite';
    const before = randomBytes(1000);
    const data = randomBytes(3 * IO_BATCH);
    await store.create(new TusUpload({ id, size: before.length + data.length, offset: 0 }));
    await fs.promises.writeFile(store.dataPath(id), before);
    // The first writev of the request stores only part of its batch, and says so (as write(2) may).
    let shortened = false;
    fs.writev = ((fd: number, buffers: NodeJS.ArrayBufferView[], position: number | null, callback: (...args: unknown[]) => void) => {
      if (shortened) return realWritev(fd, buffers, position, callback as never);
      shortened = true;
      const first = Buffer.from(buffers[0]!.buffer, buffers[0]!.byteOffset, buffers[0]!.byteLength);
      const part = first.subarray(0, 1000);
      fs.write(fd, part, 0, part.length, position, (error, written) => callback(error, written, buffers));
    }) as typeof fs.writev;

    // What the running hash of the upload is advanced with: the bytes as they are handed to the file.
    const observed: Buffer[] = [];
    const offset = await store.write(body(data), id, before.length, (chunk) => observed.push(chunk));
    expect(shortened, 'a writev was shortened').to.equal(true);
    expect(Buffer.concat(observed).equals(data), 'bytes hashed').to.equal(true);
    expect(offset).to.equal(before.length + data.length);
    const stored = await fs.promises.readFile(store.dataPath(id));
    expect(stored.length, 'stored size').to.equal(before.length + data.length);
    expect(stored.equals(Buffer.concat([before, data])), 'stored bytes').to.equal(true);
  });
});

describe('request body chunks given back once written (server/storage/chunk-release.ts)', () => {
  let dir: string;
  let store: TusgateFileStore;

  beforeEach(async () => {
    dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'tusgate-release-'));
    store = new TusgateFileStore(dir, memoryKv());
  });
  afterEach(() => fs.promises.rm(dir, { recursive: true, force: true }));

  /** A buffer of its own (Buffer.alloc never shares one), filled with random bytes. */
  const chunkOf = (size: number) => randomFillSync(Buffer.alloc(size));

  /** Runs `task` while `count` other files are open for writing, as when that many uploads stream at once. */
  async function whileWriting<T>(count: number, task: () => Promise<T>): Promise<T> {
    const others = Array.from({ length: count }, (_, i) => batchedWriteStream(path.join(dir, `other-${i}`), { flags: 'w' }));
    try {
      return await task();
    } finally {
      await Promise.all(others.map((other) => new Promise((resolve) => other.end(resolve))));
    }
  }

  it('frees a marked chunk once it is written, in a batch or alone, and leaves unmarked chunks and parts of a buffer as they are', async () => {
    const id = 'release';
    const marked = chunkOf(64 * 1024);
    const unmarked = chunkOf(64 * 1024);
    const split = chunkOf(128 * 1024);
    const large = chunkOf(IO_BATCH + 44 * 1024);
    for (const chunk of [marked, split, large]) ownChunk(chunk);
    const halves = [split.subarray(0, 64 * 1024), split.subarray(64 * 1024)];
    const expected = Buffer.concat([marked, unmarked, ...halves, large]);
    await store.create(new TusUpload({ id, size: expected.length, offset: 0 }));

    // The first four fill a batch (one writev); the large one is written alone, after it. Eight other
    // files are written at once: more than the thread pool's four threads.
    const offset = await whileWriting(8, () => store.write(Readable.from([marked, unmarked, ...halves, large]), id, 0));

    expect(offset).to.equal(expected.length);
    expect((await fs.promises.readFile(store.dataPath(id))).equals(expected), 'stored bytes').to.equal(true);
    expect(marked.byteLength, 'marked chunk written in a batch').to.equal(0);
    expect(large.byteLength, 'marked chunk written alone').to.equal(0);
    expect(unmarked.equals(expected.subarray(64 * 1024, 128 * 1024)), 'unmarked chunk').to.equal(true);
    expect(split.equals(expected.subarray(128 * 1024, 256 * 1024)), 'buffer written in parts').to.equal(true);
  });

  /** Two marked chunks of 128 KiB, copies of them to compare with, and an upload `id` of their size. */
  async function markedUpload(id: string) {
    const chunks = [chunkOf(128 * 1024), chunkOf(128 * 1024)];
    const copies = chunks.map((chunk) => Buffer.from(chunk));
    for (const chunk of chunks) ownChunk(chunk);
    await store.create(new TusUpload({ id, size: 256 * 1024, offset: 0 }));
    return { chunks, copies };
  }

  it('leaves written chunks to the GC while no more files are written at once than the thread pool has threads', async () => {
    const id = 'few';
    const { chunks, copies } = await markedUpload(id);
    await whileWriting(2, () => store.write(Readable.from(chunks), id, 0));
    expect((await fs.promises.readFile(store.dataPath(id))).equals(Buffer.concat(copies)), 'stored bytes').to.equal(true);
    expect(chunks.map((chunk, i) => chunk.equals(copies[i]!))).to.deep.equal([true, true]);
  });

  it('keeps the marked chunks of a batch the file system refused', async () => {
    const id = 'refused';
    const { chunks, copies } = await markedUpload(id);
    const realWritev = fs.writev;
    fs.writev = ((_fd: number, _buffers: unknown, _position: unknown, callback: (error: Error) => void) => {
      setImmediate(() => callback(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })));
    }) as unknown as typeof fs.writev;
    try {
      const failure = await whileWriting(8, () => store.write(Readable.from(chunks), id, 0).then(() => undefined, (error: unknown) => error));
      expect(failure, 'the write failed as storage full').to.deep.include({ status_code: 507 });
    } finally {
      fs.writev = realWritev;
    }
    expect(chunks.map((chunk, i) => chunk.equals(copies[i]!))).to.deep.equal([true, true]);
  });
});
