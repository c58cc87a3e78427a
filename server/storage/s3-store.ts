import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { S3Store, type MetadataValue } from '@tus/s3-store';
import { ERRORS, type Upload } from '@tus/utils';
import type { ByteStore } from './byte-store.js';
import { observed } from './observed.js';

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** S3's floor for every part of a multipart upload but the last: below it, completion fails (EntityTooSmall). */
const S3_MIN_PART = 5 * 1024 * 1024;
const DEFAULT_PART = 8 * 1024 * 1024;

export interface TusgateS3StoreOptions {
  bucket: string;
  /** An S3-compatible store; default: AWS. */
  endpoint?: string;
  region: string;
  /** Both or neither; without them the AWS SDK's own credential chain is used. */
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
  /** Bytes per part (default 8 MiB, never below S3's 5 MiB). */
  partSize?: number;
  /** Where parts are buffered before they go up; this store's alone, emptied by `init()`. */
  tmpDir: string;
}

export const STORAGE_UNAVAILABLE = (detail: string) => ({
  status_code: 503,
  body: `Service Unavailable: the object store cannot be reached now (${detail}); try again later\n`,
});

export interface ObjectInfo {
  size: number;
  etag: string | undefined;
  lastModified: Date | undefined;
}

type SdkError = Error & { Code?: string; $metadata?: { httpStatusCode?: number } };

function isMissing(error: unknown): boolean {
  const { name, Code } = (error ?? {}) as SdkError;
  return ['NoSuchKey', 'NoSuchUpload', 'NotFound'].some((code) => code === name || code === Code);
}

/**
 * Translates what the AWS SDK throws into the errors @tus/server answers with. Only errors from the
 * SDK (they carry `$metadata`) count as an outage: a network failure or a 5xx. A client that hangs up
 * mid-PATCH also fails with ECONNRESET, and that is not the store's fault.
 */
function storageError(error: unknown): unknown {
  if (typeof error !== 'object' || error === null || 'status_code' in error) return error;
  if (isMissing(error)) return ERRORS.FILE_NOT_FOUND;
  const sdk = error as SdkError;
  const status = sdk.$metadata?.httpStatusCode;
  if (sdk.$metadata && (status === undefined || status >= 500)) return STORAGE_UNAVAILABLE((sdk as NodeJS.ErrnoException).code ?? sdk.name);
  return error;
}

/**
 * @tus/s3-store with the gaps found against a real S3 (Ceph radosgw) closed, and the reads tusgate
 * needs. Bytes go to S3 in parts of at least 5 MiB; a PATCH that ends short of that leaves its tail
 * in `<id>.part` until the next PATCH (S3Store's scheme, kept). Expiry is left to tusgate.
 */
export class TusgateS3Store extends S3Store implements ByteStore {
  readonly tmpDir: string;
  /** S3 cannot read the parts of an unfinished multipart upload. */
  readonly readsIncomplete = false;

  constructor(options: TusgateS3StoreOptions) {
    super({
      // minPartSize stays S3's 5 MiB: a smaller one makes parts that fail at completion.
      partSize: Math.max(options.partSize ?? DEFAULT_PART, S3_MIN_PART),
      s3ClientConfig: {
        bucket: options.bucket,
        endpoint: options.endpoint,
        region: options.region,
        forcePathStyle: options.forcePathStyle,
        credentials:
          options.accessKeyId && options.secretAccessKey
            ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey }
            : undefined,
        // The SDK's default checksums send a streamed part aws-chunked with a trailing checksum,
        // which radosgw refuses (411 MissingContentLength), as other S3-compatible stores may.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        // An unreachable store should be a quick 503, not a request hanging on connect.
        requestHandler: { connectionTimeout: 5_000 },
      },
    });
    this.tmpDir = options.tmpDir;
  }

  /** Creates the buffer directory and empties it of what a previous process left. */
  async init(): Promise<void> {
    await fs.promises.mkdir(this.tmpDir, { recursive: true });
    for (const name of await fs.promises.readdir(this.tmpDir)) {
      await fs.promises.rm(path.join(this.tmpDir, name), { recursive: true, force: true });
    }
  }

  private async mapped<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw storageError(error);
    }
  }

  private key(id: string): string {
    if (!UPLOAD_ID.test(id)) throw ERRORS.FILE_NOT_FOUND;
    return id;
  }

  override create(upload: Upload): Promise<Upload> {
    return this.mapped(async () => {
      const created = await super.create(upload);
      // An empty upload is complete at creation, and no write may ever come to complete it on S3.
      if (upload.size === 0) await super.write(Readable.from([]), upload.id, 0);
      return created;
    });
  }

  override getUpload(id: string): Promise<Upload> {
    return this.mapped(async () => {
      // S3Store answers 404 when it cannot read the info for any reason, an outage included, and a
      // client told 404 starts over: read it here first so that only a missing info is a 404.
      await this.getMetadata(id);
      return super.getUpload(id);
    });
  }

  override write(src: Readable, id: string, offset: number, observe?: (chunk: Buffer) => void): Promise<number> {
    if (observe) src = observed(src, observe);
    return this.mapped(async () => {
      try {
        return await super.write(src, id, offset);
      } catch (error) {
        // An upload already complete at `offset` (see declareUploadLength) has no multipart upload
        // left; @tus/server still writes the final PATCH's empty body to it.
        if (!isMissing(error)) throw error;
        const upload = await super.getUpload(id);
        if (upload.size !== offset || upload.offset !== offset) throw error;
        src.resume();
        return offset;
      }
    });
  }

  override declareUploadLength(id: string, length: number): Promise<void> {
    return this.mapped(async () => {
      await super.declareUploadLength(id, length);
      // S3Store does not update its (possibly shared) cache here: the length stayed unknown there,
      // so the upload never completed.
      await this.clearCache(id);
      // Declared at the stored offset (IETF `Upload-Complete` without a body), no write will come to
      // complete the multipart upload: complete it now, the `<id>.part` tail becoming the last part.
      const upload = await super.getUpload(id);
      if (upload.offset === length) await super.write(Readable.from([]), id, length);
    });
  }

  /**
   * Removes every trace of an upload, finished or not: S3Store's own `remove` answers 404 for a
   * finished one (its multipart upload is gone) and leaves `<id>.part` of an unfinished one.
   */
  override remove(id: string): Promise<void> {
    return this.mapped(async () => {
      await this.clearCache(id);
      const { 'upload-id': recorded } = await this.getMetadata(this.key(id));
      const { Uploads = [] } = await this.client.listMultipartUploads({ Bucket: this.bucket, Prefix: id });
      const uploadIds = new Set([recorded, ...Uploads.filter((upload) => upload.Key === id).map((upload) => upload.UploadId)]);
      for (const uploadId of uploadIds) {
        if (!uploadId) continue;
        await this.client.abortMultipartUpload({ Bucket: this.bucket, Key: id, UploadId: uploadId }).catch((error: unknown) => {
          if (!isMissing(error)) throw error;
        });
      }
      const { Errors = [] } = await this.client.deleteObjects({
        Bucket: this.bucket,
        Delete: { Objects: [{ Key: id }, { Key: this.infoKey(id) }, { Key: this.partKey(id, true) }], Quiet: true },
      });
      if (Errors.length > 0) throw new Error(`could not delete ${Errors.map((error) => `${error.Key}: ${error.Code}`).join(', ')}`);
      await this.clearCache(id);
    });
  }

  /** Bytes [start, end) of a completed upload, streamed from one ranged GetObject. */
  readRange(id: string, start: number, end: number): Readable {
    if (end <= start) return Readable.from([]);
    const request = { Bucket: this.bucket, Key: this.key(id), Range: `bytes=${start}-${end - 1}` };
    const client = this.client;
    async function* bytes() {
      try {
        const { Body } = await client.getObject(request);
        yield* Body as Readable;
      } catch (error) {
        throw storageError(error);
      }
    }
    return Readable.from(bytes(), { objectMode: false });
  }

  /** The upload's offset: the bytes in its parts and its `<id>.part` tail, or its size once complete. */
  async storedBytes(id: string): Promise<number> {
    return (await this.getUpload(id)).offset;
  }

  /** Throws unless the bucket can be reached (for /ready). */
  async ping(): Promise<void> {
    await this.client.headBucket({ Bucket: this.bucket });
  }

  /** Size, ETag and time of a completed upload's object, for serving it. */
  objectInfo(id: string): Promise<ObjectInfo> {
    return this.mapped(async () => {
      const head = await this.client.headObject({ Bucket: this.bucket, Key: this.key(id) });
      return { size: head.ContentLength ?? 0, etag: head.ETag, lastModified: head.LastModified };
    });
  }

  /**
   * Another process may have declared the length since this one cached the info (each process has
   * its own cache by default): an info without a length is read again.
   */
  protected override async getMetadata(id: string): Promise<MetadataValue> {
    if ((await this.cache.get(id))?.file.size === undefined) await this.clearCache(id);
    return super.getMetadata(id);
  }

  /**
   * S3Store sizes parts for 5 TiB when the length is deferred: ~550 MB, so every PATCH went whole
   * into `<id>.part` and each one downloaded and re-uploaded all bytes so far. Deferred uploads use
   * the preferred size instead, which caps them at 10,000 parts (80 GiB with 8 MiB parts).
   */
  protected override calcOptimalPartSize(size?: number): number {
    return super.calcOptimalPartSize(size ?? this.preferredPartSize);
  }

  protected override async uniqueTmpFileName(template: string): Promise<string> {
    return path.join(this.tmpDir, `${template}${randomBytes(12).toString('hex')}`);
  }

  /**
   * Replaces S3Store's, which buffers in `os.tmpdir()`, sends all parts of a PATCH at once and goes
   * on cutting parts in the background after the stream failed: a part that failed left later ones
   * stored after a gap, and the offset (the sum of the parts) then counted bytes never stored. Here
   * one loop cuts the stream into part files in `tmpDir`, and the parts go up one at a time, in
   * order, while the next one is buffered; nothing is sent after a failure.
   */
  protected override async uploadParts(metadata: MetadataValue, source: Readable, firstPart: number, offset: number): Promise<number> {
    const size = metadata.file.size;
    const partSize = this.calcOptimalPartSize(size);
    let partNumber = firstPart;
    let end = offset;
    let uploaded = 0;
    let sending: Promise<void> = Promise.resolve();
    const send = async (file: string, bytes: number) => {
      end += bytes;
      const last = end === size;
      const number = partNumber++;
      const previous = sending;
      sending = (async () => {
        try {
          await previous;
          const body = fs.createReadStream(file);
          // Only the last part may be short; a PATCH's short tail waits in `<id>.part` for the next.
          if (last || bytes >= S3_MIN_PART) await this.uploadPart(metadata, body, number);
          else await this.uploadIncompletePart(metadata.file.id, body);
          uploaded += bytes;
        } finally {
          await fs.promises.rm(file, { force: true });
        }
      })();
      sending.catch(() => undefined); // awaited at the end; this only keeps it from being "unhandled"
      await previous; // one part in flight at a time, and a failed one stops the stream
    };

    let part: { file: string; handle: fs.promises.FileHandle; bytes: number } | undefined;
    let storageFailed = false;
    try {
      for await (const data of source) {
        let chunk = data as Buffer;
        while (chunk.length > 0) {
          if (!part) {
            const file = await this.uniqueTmpFileName('tus-s3-part-');
            part = { file, handle: await fs.promises.open(file, 'w'), bytes: 0 };
          }
          const piece = chunk.subarray(0, partSize - part.bytes);
          await part.handle.appendFile(piece);
          part.bytes += piece.length;
          chunk = chunk.subarray(piece.length);
          if (part.bytes === partSize) {
            const full = part;
            part = undefined;
            await full.handle.close();
            await send(full.file, full.bytes).catch((error: unknown) => {
              storageFailed = true;
              throw error;
            });
          }
        }
      }
      if (part) {
        const tail = part;
        part = undefined;
        await tail.handle.close();
        await send(tail.file, tail.bytes);
      }
    } catch (error) {
      // The body broke off (the client went away): what arrived of the current part is kept as the
      // upload's tail, so that a connection that breaks every few MiB still makes progress. S3Store
      // dropped it, and the tail it had prepended with it.
      if (part && !storageFailed && part.bytes > 0) {
        const tail = part;
        part = undefined;
        await tail.handle.close();
        await send(tail.file, tail.bytes).catch(() => undefined);
      }
      throw error;
    } finally {
      if (part) {
        await part.handle.close();
        await fs.promises.rm(part.file, { force: true });
      }
      await sending.catch(() => undefined);
    }
    await sending;
    return uploaded;
  }
}
