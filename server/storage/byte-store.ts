import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { DataStore, KvStore, Upload } from '@tus/utils';
import type { Config } from '../config.js';
import { CachedConfigstore, journalConfigstore, TusgateFileStore } from './file-store.js';
import { Journal } from './journal.js';
import { scratchDirectory } from './scratch.js';

/**
 * What tusgate needs of the store that holds upload bytes, beyond @tus/server's DataStore: reading
 * ranges back (running hash, content checks, media facts, serving, concatenation) and the offset
 * actually stored. Local disk can do more than object storage; the optional parts say what.
 */
export interface ByteStore extends DataStore {
  /** DataStore's write; `observe` sees every chunk, in order, as the store takes it (the running hash). */
  write(readable: Readable, id: string, offset: number, observe?: (chunk: Buffer) => void): Promise<number>;
  /** Bytes [start, end) of an upload: of any upload on disk, of completed ones only on S3. */
  readRange(id: string, start: number, end: number): Readable;
  storedBytes(id: string): Promise<number>;
  /** Whether `readRange` can read an incomplete upload (so a running hash can be rebuilt from it). */
  readonly readsIncomplete: boolean;
  /** Cuts an upload back to `length` bytes, to undo a refused request. Absent where storage cannot. */
  truncate?(id: string, length: number): Promise<void>;
  /** The data file of an upload, where there is one (served with `send`). */
  dataPath?(id: string): string;
  /** Releases open files; the store is not used after. */
  close?(): Promise<void>;
}

/**
 * The store STORAGE names. `uploadMetadata` is where the file store keeps tus metadata (Redis when
 * shared); S3 keeps it in the bucket, beside each object.
 */
export async function openByteStore(config: Config, uploadMetadata?: KvStore<Upload>): Promise<ByteStore> {
  if (config.STORAGE === 'file') {
    const directory = path.resolve(config.DATA_DIR, 'uploads');
    await fs.mkdir(directory, { recursive: true });
    if (uploadMetadata) return new TusgateFileStore(directory, uploadMetadata);
    // One process: every upload's tus info in one journal, cached (info files beside the data, as an
    // older tusgate wrote them, are taken in at start-up).
    const info = new Journal<Upload>(path.resolve(config.DATA_DIR, 'upload-info', 'journal.jsonl'), directory);
    await info.init();
    return new TusgateFileStore(directory, new CachedConfigstore(journalConfigstore(info)), () => info.close());
  }
  // Loaded only when configured: file storage never loads the AWS SDK (about 20 MiB).
  const { TusgateS3Store } = await import('./s3-store.js');
  const store = new TusgateS3Store({
    bucket: config.S3_BUCKET!,
    endpoint: config.S3_ENDPOINT,
    region: config.S3_REGION,
    accessKeyId: config.S3_ACCESS_KEY_ID,
    secretAccessKey: config.S3_SECRET_ACCESS_KEY,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    tmpDir: await scratchDirectory(config.DATA_DIR, 's3-parts'),
  });
  await store.init();
  return store;
}

/** /ready checks of the byte store beyond DATA_DIR being writable: the bucket, on S3. */
export function storageChecks(store: ByteStore): Record<string, () => Promise<void>> {
  const bucket = store as ByteStore & { ping?: () => Promise<void> };
  return bucket.ping ? { s3: () => bucket.ping!() } : {};
}
