import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FileStore } from '@tus/file-store';
import { ERRORS, type KvStore, type Upload } from '@tus/utils';
import type { ByteStore } from './byte-store.js';

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;

export const STORAGE_FULL = { status_code: 507, body: 'Insufficient Storage: the server has no room for these bytes now\n' };

/**
 * @tus/file-store with the few extra operations tusgate needs: a byte range (to rebuild a running
 * hash and sniff a file's head), the data file's path (for serving), and truncation (to undo a
 * rejected PATCH). Expiry is left to tusgate, so the store is built without its creation-based one.
 */
export class TusgateFileStore extends FileStore implements ByteStore {
  readonly readsIncomplete = true;

  /** @param metadata where each upload's tus metadata lives; by default JSON files beside the data */
  constructor(readonly dataDirectory: string, metadata?: KvStore<Upload>) {
    super({ directory: dataDirectory, configstore: metadata });
  }

  /**
   * Appends a stream at `offset`, as @tus/file-store does, but keeps the reason of a failure: a
   * full disk is the client's cue to wait (507), not a server bug (500).
   */
  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    const file = fs.createWriteStream(this.dataPath(id), { flags: 'r+', start: offset });
    try {
      await pipeline(readable, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') throw STORAGE_FULL;
      throw ERRORS.FILE_WRITE_ERROR;
    }
    return offset + file.bytesWritten;
  }

  override async create(upload: Parameters<FileStore['create']>[0]) {
    try {
      return await super.create(upload);
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
    return fs.createReadStream(this.dataPath(id), { start, end: end - 1 });
  }

  async storedBytes(id: string): Promise<number> {
    return (await fs.promises.stat(this.dataPath(id))).size;
  }

  async truncate(id: string, length: number): Promise<void> {
    await fs.promises.truncate(this.dataPath(id), length);
  }
}
