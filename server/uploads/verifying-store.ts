import type { Hash } from 'node:crypto';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { DataStore, ERRORS, type Locker, type Upload } from '@tus/utils';
import { isTemporary, retryWhileAway } from '../redis/unavailable.js';
import { withLocks } from '../tus/locks.js';
import type { ByteStore } from '../storage/byte-store.js';
import { Spool } from '../storage/spool.js';
import { ChecksumVerifier } from './checksum.js';
import { checkContent, CONTENT_HEAD_BYTES } from './content-type.js';
import { parseSha256, reprDigest } from './digest.js';
import { MEDIA_HEAD_BYTES, mediaHeadBytes, probeMedia, type MediaLimits } from './media.js';
import type { FailureReason, UploadEvents } from './events.js';
import type { Quota } from './quota.js';
import { isFinal, isPartial, mayExpire, type RecordStore, type UploadRecord } from './records.js';
import { UploadContexts, type RequestContext } from './request-context.js';
import type { RunningHashes } from './running-hash.js';
import type { Tombstones } from './tombstones.js';

/** An error @tus/server answers with its own status and body. */
export interface HttpError {
  status_code: number;
  body: string;
}

export const VERIFY_ERRORS = {
  HASH_MISMATCH: { status_code: 460, body: "Checksum Mismatch: the file's SHA-256 does not match the declared sha256\n" },
  CHECKSUM_MISMATCH: { status_code: 460, body: 'Checksum Mismatch: the request body does not match its Upload-Checksum; none of it was kept\n' },
  typeMismatch: (declared: string, detected: string | undefined): HttpError => ({
    status_code: 415,
    body: `Unsupported Media Type: the file's content is ${detected ?? 'not recognised'}, not the declared ${declared}\n`,
  }),
} as const;

export interface VerifyingStoreOptions {
  expiryMs: number;
  events: UploadEvents;
  media: MediaLimits;
  /** Where failed and expired uploads leave a note for their owner's `/info`. */
  tombstones?: Tombstones;
  /** Where request bodies wait for their checksum, for storage that cannot truncate (default: the OS's). */
  spoolDir?: string;
  /**
   * With state shared by processes: whether any process holds an upload's lock. The sweep then also
   * removes uploads whose creation was cut off (see `removeCutCreations`).
   */
  lockHeld?: (id: string) => Promise<boolean>;
}

/** Up to this size, a file written whole by one request is kept in memory as it passes (see `finish`). */
const PASSING_HEAD_BYTES = 64 * 1024;
/** Tries of an undo while shared state is away: about an hour, at most 30 s apart. */
const UNDO_ATTEMPTS = 130;

/** The declared type as tus-js-client (`filetype`) and Uppy (`type`, `filetype`) send it. */
export function declaredTypeOf(metadata: Record<string, string | null> | undefined): string | undefined {
  return metadata?.filetype || metadata?.type || undefined;
}

/**
 * The DataStore tusgate's doors all write through. It wraps the byte store and adds what a bare
 * store lacks: the server-owned record of each upload (owner, last write, verdict), the SHA-256
 * advanced as bytes pass, and the verdict on completion: the content must match the declared type
 * and the digest the declared sha256, or the upload is removed before the final request answers.
 *
 * All of this happens inside `write`, which @tus/server calls with the upload's lock held, so no
 * other request can see a finished upload before its verdict is recorded.
 */
export class VerifyingStore extends DataStore {
  /**
   * Writes in progress in this process, by upload. Their stored size runs ahead of their records,
   * and @tus/server may answer (and release the lock) before a write has settled: when its body
   * stream fails it stops waiting for the store. The next access to the upload waits for it.
   */
  private readonly writing = new Map<string, Promise<number>>();

  /** The request behind each call, by upload: the doors register it while they hold the upload's lock. */
  readonly contexts = new UploadContexts();

  /**
   * The SHA-256 state at `offset`: this process's, or rebuilt from the stored prefix where storage
   * can read it back. Undefined on object storage when another process (or a crash) has the state:
   * the digest is then taken from the finished object at completion.
   */
  private async runningHash(id: string, offset: number): Promise<Hash | undefined> {
    if (!this.bytes.readsIncomplete) return this.hashes.held(id, offset);
    return this.hashes.at(id, offset, (end) => this.bytes.readRange(id, 0, end));
  }

  /** Resolves once no write of this process to the upload is in flight (also for GuardedLocker). */
  async writeSettled(id: string): Promise<void> {
    await this.writing.get(id)?.catch(() => undefined);
  }

  private readonly terminationTasks: Array<(record: UploadRecord) => Promise<void>> = [];

  constructor(
    readonly bytes: ByteStore,
    readonly records: RecordStore,
    private readonly hashes: RunningHashes,
    private readonly quota: Quota,
    private readonly options: VerifyingStoreOptions,
  ) {
    super();
    // `concatenation` is answered in front of @tus/server (server/tus/concat.ts), which refuses it.
    this.extensions = ['creation', 'creation-with-upload', 'creation-defer-length', 'termination', 'expiration', 'checksum', 'concatenation'];
  }

  override getExpiration(): number {
    return this.options.expiryMs;
  }

  override async create(upload: Upload): Promise<Upload> {
    const context = this.contexts.of(upload.id);
    if (!context?.user) throw new Error('uploads are created only within an authenticated request');
    const now = new Date().toISOString();
    const expected = parseSha256(upload.metadata?.sha256);
    // A part of a parallel upload is not a file: its type and digest are checked on the final upload.
    const partial = context.concat === 'partial';
    const record: UploadRecord = {
      id: upload.id,
      owner: context.user,
      origin: context.origin ?? 'tus',
      confirmRequired: context.origin === 'legacy' ? true : undefined,
      createdAt: now,
      lastWriteAt: now,
      state: 'uploading',
      declaredType: partial ? undefined : declaredTypeOf(upload.metadata),
      expectedSha256: partial || expected === 'invalid' ? undefined : expected,
      filename: upload.metadata?.filename || upload.metadata?.name || undefined,
      size: upload.size,
      metadata: upload.metadata ?? {},
      concat: context.concat,
    };
    await this.records.set(record);
    await this.bytes.create(upload);
    // @tus/server reads a new upload back only to work out Upload-Expires from its creation date;
    // this store announces that itself (counted from the last write), so the read is spared.
    upload.creation_date = undefined;
    this.hashes.start(upload.id);
    this.options.events.emit('created', record);
    if (upload.size === 0) await this.finish(record, 0);
    else this.announceExpiry(record);
    return upload;
  }

  override async getUpload(id: string): Promise<Upload> {
    await this.writeSettled(id);
    const record = await this.records.get(id);
    if (!record) throw ERRORS.FILE_NOT_FOUND;
    if (record.checksummedFrom !== undefined && !this.writing.has(id) && this.contexts.of(id)) {
      // A checksummed request was cut off by a crash before its verdict: none of its bytes can be
      // kept. Only a caller holding the upload's lock may tell; without it the write may be another
      // process's, still under way.
      const from = record.checksummedFrom;
      delete record.checksummedFrom;
      await this.rollBack(record, undefined, from);
    }
    const upload = await this.bytes.getUpload(id);
    if (record.state !== 'uploading') {
      // A finished part of a concatenation still expires (410 once it has, as a final naming it gets).
      upload.creation_date = isPartial(record) ? record.lastWriteAt : undefined;
      return upload;
    }
    // @tus/server's handlers count expiry (410, Upload-Expires) from `creation_date`; handing them
    // the last write makes that expiry sliding, as tusgate's contract says.
    upload.creation_date = record.lastWriteAt;
    if (upload.size !== undefined && upload.offset === upload.size && !this.writing.has(id)) {
      // Every byte is stored but no verdict was recorded: the process stopped between the two.
      try {
        await this.finish(record, upload.size);
      } catch {
        throw ERRORS.FILE_NOT_FOUND;
      }
      upload.creation_date = undefined;
    }
    return upload;
  }

  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    // Taken now, while the request holds the lock: the write may outlast the request's answer.
    const context = this.contexts.of(id);
    await this.writeSettled(id);
    const work = this.writeVerified(readable, id, offset, context);
    this.writing.set(id, work);
    try {
      return await work;
    } finally {
      if (this.writing.get(id) === work) this.writing.delete(id);
    }
  }

  private async writeVerified(readable: Readable, id: string, offset: number, context: RequestContext | undefined): Promise<number> {
    const record = await this.records.get(id);
    if (!record) throw ERRORS.FILE_NOT_FOUND;
    if (record.state !== 'uploading') {
      readable.resume();
      return offset;
    }
    const size = record.size;
    const hash = await this.runningHash(id, offset);
    // With Upload-Checksum a request is all or nothing: the hash state from before it is kept, to
    // go back to if its digest differs or its body breaks off (bytes that cannot be verified).
    const checksum = context?.checksum && new ChecksumVerifier(context.checksum);
    const before = checksum && hash?.copy();
    let hashed = 0;
    // A small file's bytes are kept as they pass, when this request starts it: its completion then
    // needs no read of the file's head. They are copied: a chunk's own memory is given back once it
    // is written (storage/chunk-release.ts).
    const head: Buffer[] | undefined = offset === 0 && size !== undefined && size <= PASSING_HEAD_BYTES ? [] : undefined;
    const observe = (chunk: Buffer) => {
      hash?.update(chunk);
      checksum?.update(chunk);
      hashed += chunk.length;
      head?.push(Buffer.from(chunk));
    };
    let sourceError: unknown;
    readable.once('error', (error) => (sourceError = error));
    // Storage that cannot take bytes back (S3) gets a request with a checksum only once it is
    // verified; until then the body waits on local disk.
    const spool = checksum && !this.bytes.truncate ? new Spool(this.options.spoolDir ?? os.tmpdir()) : undefined;
    // Marked while they are written, so that a crash cannot leave them kept: bytes that reach storage
    // before their verdict, and the first bytes of a creation whose answer (its URL) is not sent yet.
    const verdictPending = checksum && !spool;
    const creating = context?.admitted && context.uploadId === id && offset === 0;
    if (verdictPending) record.checksummedFrom = offset;
    if (creating) record.unannounced = true;
    if (verdictPending || creating) await this.records.set(record);
    delete record.checksummedFrom;
    let newOffset = offset;
    try {
      if (spool && checksum) {
        await spool.fill(readable, observe);
        if (checksum.matches()) newOffset = await this.bytes.write(spool.read(), id, offset);
      } else {
        newOffset = await this.bytes.write(readable, id, offset, observe);
      }
    } catch (error) {
      if (size === undefined && (sourceError as Partial<HttpError> | undefined)?.status_code === 413) {
        // A deferred-length upload cut off at the size limit can never become a valid file.
        await this.discard(record, 'size');
        throw ERRORS.ERR_MAX_SIZE_EXCEEDED;
      }
      if (checksum) await this.rollBack(record, before, offset);
      else await this.settleFailedWrite(record, hash, offset + hashed);
      throw error;
    } finally {
      await spool?.remove();
    }
    // The write is over: from here every way out saves the record (the answer then has the URL) or
    // removes the upload.
    delete record.unannounced;
    if (checksum && context?.bodyLength !== undefined && hashed < context.bodyLength) {
      // The body ended short of its length without breaking: @tus/server stopped the request to hand
      // the upload's lock to a newer one. Nothing of it can be verified, so nothing of it is kept, and
      // the answer gives the offset where it began (a 460 would tell the client its bytes were bad).
      await this.rollBack(record, before, offset);
      return offset;
    }
    if (checksum && !checksum.matches()) {
      // A creation whose first bytes are refused answers without a Location: nobody could resume it.
      if (context?.admitted && context.uploadId === id) await this.discard(record, 'checksum');
      else {
        await this.rollBack(record, before, offset);
        this.options.events.emit('rejected', record, 'checksum');
      }
      throw VERIFY_ERRORS.CHECKSUM_MISMATCH;
    }
    if (hash) this.hashes.advance(id, hash, newOffset);
    // A final upload of a concatenation is a copy of its parts, whose bytes were counted as they arrived.
    if (hashed > 0 && !isFinal(record)) this.options.events.emit('received', hashed);
    record.lastWriteAt = new Date().toISOString();
    if (size !== undefined && newOffset === size) {
      await this.finish(record, newOffset, hash, head && hashed === newOffset ? Buffer.concat(head, hashed) : undefined);
    } else {
      await this.records.set(record);
      this.announceExpiry(record);
    }
    return newOffset;
  }

  override async declareUploadLength(id: string, length: number): Promise<void> {
    await this.bytes.declareUploadLength(id, length);
    const record = await this.records.get(id);
    if (record) await this.records.set({ ...record, size: length });
  }

  /**
   * Ends an upload of deferred length at the bytes stored so far and decides its verdict, as the
   * IETF draft's `Upload-Complete: ?1` on a request without `Content-Length` asks. Verdict errors
   * (415, 460) are thrown as from the final write. The caller holds the upload's lock.
   */
  async completeAtOffset(id: string): Promise<void> {
    await this.writeSettled(id);
    const record = await this.records.get(id);
    if (!record) throw ERRORS.FILE_NOT_FOUND;
    if (record.state !== 'uploading') return;
    const stored = await this.bytes.storedBytes(id);
    if (record.size !== undefined && record.size !== stored) {
      throw { status_code: 400, body: `Bad Request: ${stored} of the upload's ${record.size} bytes are stored` };
    }
    if (record.size === undefined) await this.bytes.declareUploadLength(id, stored);
    await this.finish(record, stored);
  }

  /**
   * Removes what a creation stored when the creation was answered with an error (a 413 for a body
   * over its length, a full disk): the answer has no Location, so nobody could resume the upload,
   * and it would hold one of its owner's active-upload slots until the expiry sweep. Frees the slot
   * also when nothing was stored. Shared state away (often the reason the creation failed): tried
   * again in the background until it is back, for about an hour.
   */
  async abandonCreation(id: string, owner: string, reason: FailureReason): Promise<void> {
    const undo = async () => {
      await this.writeSettled(id);
      const record = await this.records.get(id);
      if (record?.state === 'uploading') await this.discard(record, reason);
      else if (!record) await this.quota.release(owner, id);
    };
    try {
      await undo();
    } catch (error) {
      if (!isTemporary(error)) throw error;
      retryWhileAway(undo, { attempts: UNDO_ATTEMPTS });
    }
  }

  /**
   * `task` runs for each upload its owner terminates, before the termination is answered: what
   * another door shows of the upload (a legacy session's status) is current by the time the client
   * reads the answer.
   */
  whenTerminated(task: (record: UploadRecord) => Promise<void>): void {
    this.terminationTasks.push(task);
  }

  override async remove(id: string): Promise<void> {
    const record = await this.records.get(id);
    if (!record) throw ERRORS.FILE_NOT_FOUND;
    await this.drop(record);
    await Promise.all(this.terminationTasks.map((task) => task(record)));
    this.options.events.emit('terminated', record);
  }

  /**
   * Removes incomplete uploads whose last write is older than the expiry; returns how many. With
   * `locker`, each is removed under its upload lock and looked at again first: processes sweeping
   * the same records at once then remove (and announce) each upload once. With `owner`, only that
   * user's uploads are looked at.
   */
  async sweepExpired(now = Date.now(), locker?: Locker, owner?: string): Promise<number> {
    let removed = 0;
    for (const candidate of await this.records.expiryCandidates()) {
      if (owner !== undefined && candidate.owner !== owner) continue;
      const expired = this.isExpired(candidate, now);
      if (!expired && !(await this.creationCutOff(candidate))) continue;
      const sweep = async () => {
        const record = locker ? await this.records.get(candidate.id) : candidate;
        if (record && this.isExpired(record, now)) await this.expire(record);
        // Still marked with its lock in hand: the creation that marked it held the lock until it
        // unmarked it, or until its process ended.
        else if (record?.unannounced && !expired) await this.discard(record, 'aborted');
        else return false;
        return true;
      };
      if (await (locker ? withLocks(locker, [candidate.id], sweep) : sweep())) removed++;
    }
    if (owner === undefined) await this.options.tombstones?.sweep(this.options.expiryMs, now);
    return removed;
  }

  /**
   * A creation cut off by the end of its process, with state shared by processes: still marked
   * `unannounced`, which a creation does only while it holds the upload's lock, and nobody holds
   * that lock. (A creation that ends between the two reads is seen unmarked once the sweep has the lock.)
   */
  private async creationCutOff(record: UploadRecord): Promise<boolean> {
    return record.unannounced === true && this.options.lockHeld !== undefined && !(await this.options.lockHeld(record.id));
  }

  /**
   * Removes the uploads whose creation was still writing their first bytes when the last run ended
   * (a crash): their clients never got their URL, and each would hold one of its owner's
   * active-upload slots until it expired. For a process whose records no other process writes, at
   * start-up; with shared state the sweep finds them instead (`lockHeld`). Returns how many were removed.
   */
  async removeCutCreations(): Promise<number> {
    let removed = 0;
    for (const record of await this.records.expiryCandidates()) {
      if (!record.unannounced) continue;
      await this.discard(record, 'aborted');
      removed++;
    }
    return removed;
  }

  /**
   * Removes an upload that a door found past its expiry (a legacy session touched after it, or the
   * legacy cleanup): announced as expired, as by the sweep, not as terminated by its owner.
   * Without `tombstone` nothing is left for its owner's next request to be told it expired.
   */
  async removeExpired(id: string, { tombstone = true } = {}): Promise<void> {
    const record = await this.records.get(id);
    if (record) await this.expire(record, tombstone);
  }

  private async expire(record: UploadRecord, tombstone = true): Promise<void> {
    await this.drop(record);
    if (tombstone) await this.options.tombstones?.add(record, 'expired');
    this.options.events.emit('expired', record);
  }

  /**
   * When the upload expires: one expiry period after its last write, or after now while this process
   * is writing it; undefined for an upload that never expires. A complete part of a concatenation
   * is kept only for the expiry time: it is never served, and a final upload copies its bytes (a
   * client may build several finals from one part).
   */
  expiresAt(record: UploadRecord): number | undefined {
    if (!mayExpire(record)) return undefined;
    return (this.writing.has(record.id) ? Date.now() : Date.parse(record.lastWriteAt)) + this.options.expiryMs;
  }

  /** Whether the record is past its expiry (incomplete uploads and concatenation parts only). */
  isExpired(record: UploadRecord, now = Date.now()): boolean {
    return (this.expiresAt(record) ?? Infinity) <= now;
  }

  override async deleteExpired(): Promise<number> {
    return this.sweepExpired();
  }

  /** Whether the upload is complete and verified (the only state in which it is ever served). */
  async completedRecord(id: string): Promise<UploadRecord | undefined> {
    const record = await this.records.get(id);
    return record?.state === 'complete' && !isPartial(record) ? record : undefined;
  }

  /**
   * Undoes one request: the stored bytes and the running hash go back to `offset`, where it began.
   * Storage that cannot truncate was never given the bytes of a refused request (see Spool); if a
   * verified one broke off on its way there, the hash state is dropped, to be taken from the bytes.
   */
  private async rollBack(record: UploadRecord, before: Hash | undefined, offset: number): Promise<void> {
    try {
      if (this.bytes.truncate) await this.bytes.truncate(record.id, offset);
      else if ((await this.bytes.storedBytes(record.id)) !== offset) before = undefined;
    } catch (error) {
      this.hashes.forget(record.id);
      throw error;
    }
    if (before) this.hashes.advance(record.id, before, offset);
    else this.hashes.forget(record.id);
    record.lastWriteAt = new Date().toISOString();
    await this.records.set(record);
  }

  private async settleFailedWrite(record: UploadRecord, hash: Hash | undefined, hashedTo: number): Promise<void> {
    let stored: number;
    try {
      stored = await this.bytes.storedBytes(record.id);
    } catch {
      this.hashes.forget(record.id);
      return;
    }
    // A chunk is hashed as the store takes it; keep the state only when the bytes stored are
    // exactly the bytes hashed, else rebuild it (or take the digest from the finished object).
    if (hash && stored === hashedTo) this.hashes.advance(record.id, hash, stored);
    else this.hashes.forget(record.id);
    record.lastWriteAt = new Date().toISOString();
    await this.records.set(record);
  }

  /**
   * Decides the verdict on a fully stored upload, records it, and removes the upload if it fails.
   * `whole` is the file's content when the caller has it (a small file written in one request).
   */
  private async finish(record: UploadRecord, size: number, hash?: Hash, whole?: Buffer): Promise<void> {
    const running = hash ?? (await this.hashes.at(record.id, size, (end) => this.bytes.readRange(record.id, 0, end)));
    record.sha256 = running.digest('hex');
    record.size = size;
    this.hashes.forget(record.id);
    // One read of the file's head serves the magic numbers and, for a small file, every later check
    // (its media parse included); a larger file's head is read only as far as its checks need: the
    // magic numbers, then an image's header. Completion costs the same few syscalls whatever the
    // file's size, and holds no more of it in memory than it reads.
    let head =
      whole?.length === size && size <= MEDIA_HEAD_BYTES
        ? whole
        : await buffer(this.bytes.readRange(record.id, 0, size <= MEDIA_HEAD_BYTES ? size : CONTENT_HEAD_BYTES));
    if (record.declaredType) {
      const verdict = await checkContent(record.declaredType, head.subarray(0, CONTENT_HEAD_BYTES));
      if (verdict.ok) record.verifiedType = verdict.verifiedType;
      else record.contentMismatch = verdict.detected ?? 'unrecognised';
    } else {
      record.verifiedType = 'application/octet-stream';
    }
    if (record.contentMismatch === undefined) {
      const wanted = mediaHeadBytes(record.verifiedType!, size);
      if (head.length < wanted) head = Buffer.concat([head, await buffer(this.bytes.readRange(record.id, head.length, wanted))]);
      const media = await probeMedia(
        record.verifiedType!,
        { size, head, readRange: (start, end) => this.bytes.readRange(record.id, start, end) },
        this.options.media,
      );
      if (media.ok) record.media = media.facts;
      else record.mediaRejection = { status: media.status, message: media.message };
    }
    if (record.confirmRequired) {
      record.state = 'stored';
      record.lastWriteAt = new Date().toISOString();
      await this.records.set(record);
      return;
    }
    await this.confirmRecord(record, record.expectedSha256);
  }

  /**
   * Completes a stored upload that waited for its owner's word, checking the digest the owner gives
   * now. A digest mismatch keeps the upload stored (the owner may confirm again with the right one);
   * a content mismatch removes it.
   */
  async confirm(id: string, expectedSha256: string | undefined): Promise<UploadRecord> {
    const record = await this.records.get(id);
    if (!record) throw ERRORS.FILE_NOT_FOUND;
    if (record.state === 'complete') return record;
    if (record.state !== 'stored') throw { status_code: 409, body: 'Conflict: the upload is not fully stored yet\n' };
    await this.confirmRecord(record, expectedSha256, { keepOnHashMismatch: true });
    return record;
  }

  private async confirmRecord(
    record: UploadRecord,
    expectedSha256: string | undefined,
    { keepOnHashMismatch = false } = {},
  ): Promise<void> {
    if (record.contentMismatch !== undefined) {
      const detected = record.contentMismatch;
      await this.discard(record, 'type');
      throw VERIFY_ERRORS.typeMismatch(record.declaredType ?? 'type', detected === 'unrecognised' ? undefined : detected);
    }
    if (record.mediaRejection) {
      const { status, message } = record.mediaRejection;
      await this.discard(record, 'media');
      throw { status_code: status, body: `${message}\n` };
    }
    if (expectedSha256 && expectedSha256 !== record.sha256) {
      if (keepOnHashMismatch) {
        // The upload waits for another try: one attempt refused, not the upload.
        this.options.events.emit('rejected', record, 'hash');
      } else {
        await this.discard(record, 'hash');
      }
      throw VERIFY_ERRORS.HASH_MISMATCH;
    }
    const now = new Date().toISOString();
    Object.assign(record, { state: 'complete', completedAt: now, lastWriteAt: now });
    await this.records.set(record);
    await this.quota.release(record.owner, record.id);
    const context = this.contexts.of(record.id);
    if (context) {
      context.responseHeaders['Repr-Digest'] = reprDigest(record.sha256!);
      // A creation that carried the whole file announced an expiry before its bytes arrived; a
      // finished part of a concatenation lives on only until its expiry.
      delete context.responseHeaders['Upload-Expires'];
      if (isPartial(record)) this.announceExpiry(record);
    }
    this.options.events.emit('completed', record);
  }

  /** Counts as a write for expiry (the legacy facade staging a chunk that arrived early). */
  async touch(id: string): Promise<void> {
    const record = await this.records.get(id);
    if (!record || record.state === 'complete') return;
    record.lastWriteAt = new Date().toISOString();
    await this.records.set(record);
  }

  private async discard(record: UploadRecord, reason: FailureReason): Promise<void> {
    // Gone: the answer announces no expiry (a creation announced one before its bytes arrived).
    const context = this.contexts.of(record.id);
    if (context) delete context.responseHeaders['Upload-Expires'];
    await this.drop(record);
    await this.options.tombstones?.add(record, 'failed', reason);
    this.options.events.emit('failed', record, reason);
  }

  private async drop(record: UploadRecord): Promise<void> {
    this.hashes.forget(record.id);
    try {
      await this.bytes.remove(record.id);
    } catch {
      // Already gone: the record is what still needs removing.
    }
    await this.records.delete(record.id);
    await this.quota.release(record.owner, record.id);
  }

  private announceExpiry(record: UploadRecord): void {
    const context = this.contexts.of(record.id);
    const expires = this.expiresAt(record);
    if (context && expires !== undefined) context.responseHeaders['Upload-Expires'] = new Date(expires).toUTCString();
  }
}
