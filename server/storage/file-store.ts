import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FileStore } from '@tus/file-store';
import { ERRORS, isPathInsideDirectory, type KvStore, type Upload } from '@tus/utils';
import { batchedReadStream, batchedWriteStream } from './batched-io.js';
import type { ByteStore } from './byte-store.js';
import type { Journal } from './journal.js';

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;

export const STORAGE_FULL = { status_code: 507, body: 'Insufficient Storage: the server has no room for these bytes now\n' };

/** @tus/file-store's upload info as documents of a Journal: a line per change, not a file per upload. */
export function journalConfigstore(journal: Journal<Upload>): KvStore<Upload> {
  return {
    get: (key) => journal.get(key),
    set: (key, value) => journal.set(key, value),
    delete: (key) => journal.delete(key),
    list: () => journal.keys(),
  };
}

/**
 * @tus/file-store's upload info with a write-through cache of each document's text. @tus/file-store
 * reads the info on every HEAD and PATCH, and this process is its only writer, so a hit parses the
 * same JSON that reading storage would, without a read.
 */
export class CachedConfigstore implements KvStore<Upload> {
  private readonly cache = new Map<string, string>();
  /**
   * Counts the starts and ends of writes and removals: a read of the file that overlapped one may
   * have seen the old or a half-written document, and is returned but not cached.
   */
  private changes = 0;

  constructor(private readonly files: KvStore<Upload>, private readonly maxEntries = 10_000) {}

  async get(key: string): Promise<Upload | undefined> {
    const text = this.cache.get(key);
    if (text !== undefined) return JSON.parse(text) as Upload;
    const before = this.changes;
    const value = await this.files.get(key);
    if (value !== undefined && this.changes === before) this.remember(key, JSON.stringify(value));
    return value;
  }

  async set(key: string, value: Upload): Promise<void> {
    this.changes++;
    this.cache.delete(key);
    const text = JSON.stringify(value);
    try {
      await this.files.set(key, value);
    } finally {
      this.changes++;
    }
    this.remember(key, text);
  }

  async delete(key: string): Promise<void> {
    this.changes++;
    this.cache.delete(key);
    try {
      await this.files.delete(key);
    } finally {
      this.changes++;
    }
  }

  async list(): Promise<string[]> {
    return (await this.files.list?.()) ?? [];
  }

  private remember(key: string, text: string): void {
    this.cache.delete(key);
    // Oldest first: an entry evicted here is read from its file again when next asked for.
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, text);
  }
}

type WriteCallback = (error?: Error | null) => void;

/**
 * Lets `observe` see each chunk, in order, as `file` hands it to the file system: just after the
 * write is issued, so that observing (hashing) runs while the write is under way instead of before
 * it, and with no stream in between.
 */
function observeWrites(file: fs.WriteStream, observe: (chunk: Buffer) => void): void {
  const write = file._write;
  file._write = function (this: fs.WriteStream, chunk: Buffer, encoding: BufferEncoding, callback: WriteCallback) {
    write.call(this, chunk, encoding, callback);
    observe(chunk);
  };
  const writev = file._writev;
  if (writev) {
    file._writev = function (this: fs.WriteStream, chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: WriteCallback) {
      writev.call(this, chunks, callback);
      for (const { chunk } of chunks) observe(chunk);
    };
  }
}

/**
 * @tus/file-store with the few extra operations tusgate needs: a byte range (to rebuild a running
 * hash and sniff a file's head), the data file's path (for serving), and truncation (to undo a
 * rejected PATCH). Expiry is left to tusgate, so the store is built without its creation-based one.
 */
export class TusgateFileStore extends FileStore implements ByteStore {
  readonly readsIncomplete = true;

  /**
   * @param metadata where each upload's tus metadata lives: a journal of this process, or shared state
   *   when several processes write it
   * @param closeMetadata releases what `metadata` holds open
   */
  constructor(
    readonly dataDirectory: string,
    metadata: KvStore<Upload>,
    private readonly closeMetadata?: () => Promise<void>,
  ) {
    super({ directory: dataDirectory, configstore: metadata });
  }

  async close(): Promise<void> {
    await this.closeMetadata?.();
  }

  /**
   * Appends a stream at `offset`, as @tus/file-store does, but keeps the reason of a failure: a
   * full disk is the client's cue to wait (507), not a server bug (500). `observe` sees every chunk
   * as it is written (the running hash is advanced there, with no extra stream hop).
   */
  override async write(readable: Readable, id: string, offset: number, observe?: (chunk: Buffer) => void): Promise<number> {
    const file = batchedWriteStream(this.dataPath(id), { flags: 'r+', start: offset });
    if (observe) observeWrites(file, observe);
    try {
      await pipeline(readable, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') throw STORAGE_FULL;
      throw ERRORS.FILE_WRITE_ERROR;
    }
    return offset + file.bytesWritten;
  }

  /**
   * As @tus/file-store creates an upload (an empty data file, then its info), without asking for
   * the directory on every creation: it is made only when the data file cannot be created without it.
   */
  override async create(upload: Upload): Promise<Upload> {
    try {
      const filePath = path.join(this.directory, upload.id);
      if (!isPathInsideDirectory(this.directory, filePath)) throw ERRORS.FILE_NOT_FOUND;
      try {
        await fs.promises.writeFile(filePath, '');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        await fs.promises.mkdir(path.dirname(filePath), { recursive: true });
        await fs.promises.writeFile(filePath, '');
      }
      await this.configstore.set(upload.id, upload);
      upload.storage = { type: 'file', path: filePath };
      return upload;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') throw STORAGE_FULL;
      throw error;
    }
  }

  dataPath(id: string): string {
    if (!UPLOAD_ID.test(id)) throw ERRORS.FILE_NOT_FOUND;
    return path.join(this.dataDirectory, id);
  }

  /** Bytes [start, end) of an upload's data. */
  readRange(id: string, start: number, end: number): Readable {
    if (end <= start) return Readable.from([]);
    return batchedReadStream(this.dataPath(id), { start, end: end - 1 });
  }

  async storedBytes(id: string): Promise<number> {
    return (await fs.promises.stat(this.dataPath(id))).size;
  }

  async truncate(id: string, length: number): Promise<void> {
    await fs.promises.truncate(this.dataPath(id), length);
  }
}
