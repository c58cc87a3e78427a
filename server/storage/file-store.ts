import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { FileStore } from '@tus/file-store';
import { ERRORS } from '@tus/utils';

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * @tus/file-store with the few extra operations tusgate needs: a byte range (to rebuild a running
 * hash and sniff a file's head), the data file's path (for serving), and truncation (to undo a
 * rejected PATCH). Expiry is left to tusgate, so the store is built without its creation-based one.
 */
export class TusgateFileStore extends FileStore {
  constructor(readonly dataDirectory: string) {
    super({ directory: dataDirectory });
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
