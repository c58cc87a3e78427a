import type { DocStore } from '../storage/json-dir.js';

/**
 * What the server knows about an upload that no client may set: who owns it, when it was last
 * written, what its bytes were verified to be. Kept apart from the tus `Upload-Metadata` (which
 * clients write and read back on HEAD), so no metadata key can forge or reveal any of it.
 */
export interface UploadRecord {
  id: string;
  owner: string;
  origin: 'tus' | 'legacy';
  createdAt: string;
  lastWriteAt: string;
  /**
   * uploading: bytes still arriving. stored: every byte is in and verified, waiting for the owner's
   * confirmation (legacy sessions complete only when their client calls `complete`). complete:
   * verified and servable.
   */
  state: 'uploading' | 'stored' | 'complete';
  /** Completion waits for `VerifyingStore.confirm` instead of happening with the last byte. */
  confirmRequired?: boolean;
  /** Declared media type, as the client sent it. */
  declaredType?: string;
  /** Declared whole-file SHA-256, lower-case hex. */
  expectedSha256?: string;
  /** Client's file name: for Content-Disposition only, never for a path. */
  filename?: string;
  size?: number;
  verifiedType?: string;
  /** The client's Upload-Metadata, as sent (for hooks and info; never trusted for anything). */
  metadata?: Record<string, string | null>;
  /** For a stored upload whose media facts break a limit: the refusal to give at confirmation. */
  mediaRejection?: { status: number; message: string };
  /** Facts read from the file's container at completion (dimensions, duration), when known. */
  media?: Record<string, number | string>;
  /** For a stored upload whose bytes are not its declared type: what they were detected as. */
  contentMismatch?: string;
  sha256?: string;
  /**
   * Set while a request with `Upload-Checksum` writes to storage that can truncate: the offset it
   * began at. Found set with no such write under way, it marks bytes a crash left unverified.
   */
  checksummedFrom?: number;
  /**
   * Set while the tus creation that carries an upload's first bytes writes them: its answer, which
   * gives the client the upload's URL, is not sent yet. Found set at start-up, it marks an upload
   * whose creation a crash cut off, which nobody can resume.
   */
  unannounced?: true;
  completedAt?: string;
  /**
   * tus concatenation: `partial` for a part of a parallel upload (never served; its type and digest
   * are checked on the final upload), or `final;<urls>` for the upload built from parts. Kept as
   * the client sent it, since HEAD must echo it.
   */
  concat?: string;
}

/** A part of a concatenation: a building block, not a file. */
export function isPartial(record: UploadRecord): boolean {
  return record.concat === 'partial';
}

export function isFinal(record: UploadRecord): boolean {
  return record.concat?.startsWith('final;') === true;
}

/** Whether the expiry sweep must look at a record: unfinished uploads, and parts of concatenations. */
export function mayExpire(record: UploadRecord): boolean {
  return record.state !== 'complete' || isPartial(record);
}

export interface RecordStore {
  get(id: string): Promise<UploadRecord | undefined>;
  set(record: UploadRecord): Promise<void>;
  delete(id: string): Promise<void>;
  all(): Promise<UploadRecord[]>;
  /** The records that may expire (see `mayExpire`); others may come too. */
  expiryCandidates(): Promise<UploadRecord[]>;
}

/**
 * Records as JSON documents (a journal, or Redis when processes share state), optionally with a
 * write-through cache: every tus request reads its upload's record two or three times. The cache is
 * only right for a single writer, so it is off when several processes share the records.
 * Callers get copies, so a record changed but not yet saved never shows through the cache.
 *
 * A single writer also keeps the ids of the records that may expire, so that the sweep (every minute)
 * reads those, not every stored upload's record.
 */
export class UploadRecords implements RecordStore {
  private readonly cache = new Map<string, UploadRecord>();
  /**
   * Counts finished writes. A read from the store that overlaps a write may return what was there
   * before it, and must not put that in the cache after the write has put (or removed) its own.
   */
  private writes = 0;
  /** Ids of records that may expire; undefined when several processes write the records. */
  private readonly mayExpire: Set<string> | undefined;

  constructor(
    private readonly docs: DocStore<UploadRecord>,
    private readonly cacheEntries: number,
  ) {
    this.mayExpire = cacheEntries > 0 ? new Set() : undefined;
  }

  async init(): Promise<void> {
    const tracked = this.mayExpire;
    // Tracked as the store opens: a journal parses every version once, and a second read of each
    // current record took seconds for tens of thousands of them.
    await this.docs.init(tracked && ((id, record) => (record ? this.track(record) : tracked.delete(id))));
  }

  private track(record: UploadRecord): void {
    if (mayExpire(record)) this.mayExpire?.add(record.id);
    else this.mayExpire?.delete(record.id);
  }

  async expiryCandidates(): Promise<UploadRecord[]> {
    if (!this.mayExpire) return this.all();
    const records = await Promise.all([...this.mayExpire].map((id) => this.get(id)));
    return records.filter((record): record is UploadRecord => record !== undefined);
  }

  async get(id: string): Promise<UploadRecord | undefined> {
    const cached = this.cache.get(id);
    if (cached) return { ...cached };
    const writes = this.writes;
    const record = await this.docs.get(id);
    if (record && writes === this.writes) this.remember(record);
    return record && { ...record };
  }

  async set(record: UploadRecord): Promise<void> {
    await this.docs.set(record.id, record);
    this.writes++;
    this.remember({ ...record });
    this.track(record);
  }

  async delete(id: string): Promise<void> {
    this.cache.delete(id);
    await this.docs.delete(id);
    this.writes++;
    // A read that ended while the delete was under way may have put the record back.
    this.cache.delete(id);
    this.mayExpire?.delete(id);
  }

  private remember(record: UploadRecord): void {
    if (this.cacheEntries === 0) return;
    this.cache.delete(record.id);
    if (this.cache.size >= this.cacheEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(record.id, record);
  }

  async all(): Promise<UploadRecord[]> {
    const records = await Promise.all((await this.docs.keys()).map((id) => this.docs.get(id)));
    return records.filter((record): record is UploadRecord => record !== undefined);
  }
}
