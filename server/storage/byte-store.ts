import type { Readable } from 'node:stream';
import type { DataStore } from '@tus/utils';

/**
 * What tusgate needs of the store that holds upload bytes, beyond @tus/server's DataStore: reading
 * ranges back (running hash, content checks, media facts, serving, concatenation) and the offset
 * actually stored. Local disk can do more than object storage; the optional parts say what.
 */
export interface ByteStore extends DataStore {
  /** Bytes [start, end) of an upload: of any upload on disk, of completed ones only on S3. */
  readRange(id: string, start: number, end: number): Readable;
  storedBytes(id: string): Promise<number>;
  /** Whether `readRange` can read an incomplete upload (so a running hash can be rebuilt from it). */
  readonly readsIncomplete: boolean;
  /** Cuts an upload back to `length` bytes, to undo a refused request. Absent where storage cannot. */
  truncate?(id: string, length: number): Promise<void>;
  /** The data file of an upload, where there is one (served with `send`). */
  dataPath?(id: string): string;
}
