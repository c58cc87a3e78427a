import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { KvStore, Upload } from '@tus/utils';
import { Upload as TusUpload } from '@tus/utils';
import { expect } from 'chai';
import { IO_BATCH } from '../server/storage/batched-io.js';
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
