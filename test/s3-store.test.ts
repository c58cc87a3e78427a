import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command, ListPartsCommand, S3Client } from '@aws-sdk/client-s3';
import { ERRORS, Upload } from '@tus/utils';
import { expect } from 'chai';
import { TusgateS3Store, type TusgateS3StoreOptions } from '../server/storage/s3-store.js';
import { startRadosgw, type Radosgw } from './helpers/ceph.js';
import { freePort } from './helpers/process.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** `data` as a request body would come: in 64 KiB chunks. */
function body(data: Buffer): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < data.length; at += 64 * KiB) yield data.subarray(at, at + 64 * KiB);
    })(),
    { objectMode: false },
  );
}

/** A body that sends the first `bytes` of `data`, then fails, as a client that goes away. */
/**
 * `bytes` of `data` in 64 KiB chunks, then an error. The error comes only once every chunk has been
 * taken: a stream that fails drops what it still buffers, which would make the bytes kept depend on
 * how fast the store read.
 */
function failingBody(data: Buffer, bytes: number): Readable {
  let at = 0;
  return new Readable({
    read() {
      if (at >= bytes) return void this.destroy(new Error('the client went away'));
      this.push(data.subarray(at, Math.min(bytes, at + 64 * KiB)));
      at += 64 * KiB;
    },
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('TusgateS3Store (against a real Ceph radosgw)', function () {
  this.timeout(60_000);
  let rgw: Radosgw;
  let client: S3Client;
  let store: TusgateS3Store;
  const tmpDirs: string[] = [];

  function storeOptions(overrides: Partial<TusgateS3StoreOptions> = {}): TusgateS3StoreOptions {
    const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tusgate-s3-buffer-'));
    tmpDirs.push(tmpDir);
    return {
      bucket: rgw.bucket,
      endpoint: rgw.endpoint,
      region: 'us-east-1',
      accessKeyId: rgw.accessKeyId,
      secretAccessKey: rgw.secretAccessKey,
      forcePathStyle: true,
      tmpDir,
      ...overrides,
    };
  }

  async function newStore(overrides: Partial<TusgateS3StoreOptions> = {}): Promise<TusgateS3Store> {
    const created = new TusgateS3Store(storeOptions(overrides));
    await created.init();
    return created;
  }

  async function create(size: number | undefined, on = store): Promise<string> {
    const id = randomBytes(12).toString('hex');
    await on.create(new Upload({ id, size, offset: 0, metadata: {} }));
    return id;
  }

  async function keysIn(bucket: string, prefix = ''): Promise<string[]> {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return (listed.Contents ?? []).map((object) => object.Key!);
  }

  async function multipartUploadsIn(bucket: string): Promise<string[]> {
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    return (listed.Uploads ?? []).map((upload) => upload.Key!);
  }

  before(async function () {
    // Fails (never skips) when Ceph is missing: startRadosgw throws one line saying what to install.
    rgw = await startRadosgw();
    client = new S3Client({
      endpoint: rgw.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    store = await newStore();
  });

  after(async () => {
    client?.destroy();
    await rgw?.stop();
    for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores an upload written in one go and reads back any range of it byte-exact', async () => {
    const data = randomBytes(13 * MiB + 12_345);
    const id = await create(data.length);
    expect(await store.storedBytes(id)).to.equal(0);
    expect(await store.write(body(data), id, 0)).to.equal(data.length);

    const upload = await store.getUpload(id);
    expect([upload.offset, upload.size]).to.deep.equal([data.length, data.length]);
    expect(await store.storedBytes(id)).to.equal(data.length);
    expect((await readAll(store.readRange(id, 0, data.length))).equals(data)).to.equal(true);
    const [start, end] = [5 * MiB - 17, 9 * MiB + 123];
    expect((await readAll(store.readRange(id, start, end))).equals(data.subarray(start, end))).to.equal(true);
    expect(await readAll(store.readRange(id, data.length - 1, data.length))).to.deep.equal(data.subarray(-1));
    expect((await readAll(store.readRange(id, 7, 7))).length).to.equal(0);

    const info = await store.objectInfo(id);
    expect(info.size).to.equal(data.length);
    expect(info.etag).to.be.a('string').and.not.equal('');
    expect(info.lastModified).to.be.instanceOf(Date);
  });

  it('never sends a part below 5 MiB but the last: 40 PATCHes of 300 KiB read back byte-exact', async () => {
    const piece = 300 * KiB;
    const data = randomBytes(40 * piece);
    const id = await create(data.length);
    for (let at = 0; at < data.length; at += piece) {
      expect(await store.storedBytes(id)).to.equal(at);
      if (at + piece === data.length) {
        // Before the last PATCH: every part S3 holds is a full one, the rest waits in `<id>.part`.
        const { Uploads = [] } = await client.send(new ListMultipartUploadsCommand({ Bucket: rgw.bucket, Prefix: id }));
        const { Parts = [] } = await client.send(new ListPartsCommand({ Bucket: rgw.bucket, Key: id, UploadId: Uploads[0]?.UploadId }));
        expect(Parts.length).to.be.greaterThan(0);
        for (const part of Parts) expect(part.Size).to.be.at.least(5 * MiB);
        expect(await keysIn(rgw.bucket, `${id}.part`)).to.deep.equal([`${id}.part`]);
      }
      expect(await store.write(body(data.subarray(at, at + piece)), id, at)).to.equal(at + piece);
    }
    expect(await store.storedBytes(id)).to.equal(data.length);
    expect((await readAll(store.readRange(id, 0, data.length))).equals(data)).to.equal(true);
    expect(await keysIn(rgw.bucket, `${id}.part`)).to.deep.equal([]);
  });

  it('completes a deferred-length upload once its length is declared, then written to', async () => {
    const data = randomBytes(7 * MiB);
    const id = await create(undefined);
    expect(await store.write(body(data.subarray(0, 3 * MiB)), id, 0)).to.equal(3 * MiB);
    expect(await store.write(body(data.subarray(3 * MiB, 6 * MiB)), id, 3 * MiB)).to.equal(6 * MiB);
    expect((await store.getUpload(id)).size).to.equal(undefined);
    // As @tus/server does for a PATCH that carries Upload-Length: declare, then write the body.
    await store.declareUploadLength(id, data.length);
    expect((await store.getUpload(id)).size).to.equal(data.length);
    expect(await store.write(body(data.subarray(6 * MiB)), id, 6 * MiB)).to.equal(data.length);
    expect((await readAll(store.readRange(id, 0, data.length))).equals(data)).to.equal(true);
  });

  it('completes a deferred-length upload declared at its stored offset, with no write after', async () => {
    const data = randomBytes(2 * MiB + 5);
    const id = await create(undefined);
    expect(await store.write(body(data), id, 0)).to.equal(data.length);
    await store.declareUploadLength(id, data.length);
    expect((await readAll(store.readRange(id, 0, data.length))).equals(data)).to.equal(true);
    // @tus/server still writes the final PATCH's (empty) body after declaring the length.
    expect(await store.write(body(Buffer.alloc(0)), id, data.length)).to.equal(data.length);
    expect(await store.storedBytes(id)).to.equal(data.length);
  });

  it('sees a length declared by another process (another store, its own cache)', async () => {
    const data = randomBytes(6 * MiB);
    const other = await newStore();
    const id = await create(undefined);
    expect(await store.write(body(data.subarray(0, 4 * MiB)), id, 0)).to.equal(4 * MiB); // caches "no length"
    await other.declareUploadLength(id, data.length);
    expect(await store.write(body(data.subarray(4 * MiB)), id, 4 * MiB)).to.equal(data.length);
    expect((await readAll(other.readRange(id, 0, data.length))).equals(data)).to.equal(true);
  });

  it('stores an empty upload as an empty object at creation', async () => {
    const id = await create(0);
    expect((await store.objectInfo(id)).size).to.equal(0);
    expect(await store.storedBytes(id)).to.equal(0);
  });

  it('removes finished and unfinished uploads without leaving an object or a multipart upload', async () => {
    const bucket = 'tusgate-remove-test';
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const own = await newStore({ bucket });
    const finished = await create(6 * MiB, own);
    await own.write(body(randomBytes(6 * MiB)), finished, 0);
    // Unfinished with a full part, a `<id>.part` tail and its `.info`.
    const unfinished = await create(20 * MiB, own);
    await own.write(body(randomBytes(9 * MiB)), unfinished, 0);
    const deferred = await create(undefined, own);
    await own.write(body(randomBytes(100 * KiB)), deferred, 0);
    expect((await keysIn(bucket)).sort()).to.deep.equal(
      [finished, `${finished}.info`, `${unfinished}.info`, `${unfinished}.part`, `${deferred}.info`, `${deferred}.part`].sort(),
    );
    expect((await multipartUploadsIn(bucket)).sort()).to.deep.equal([unfinished, deferred].sort());

    for (const id of [finished, unfinished, deferred]) await own.remove(id);
    expect(await keysIn(bucket)).to.deep.equal([]);
    expect(await multipartUploadsIn(bucket)).to.deep.equal([]);
    for (const id of [finished, unfinished]) {
      expect(await rejection(own.getUpload(id))).to.equal(ERRORS.FILE_NOT_FOUND);
      expect(await rejection(own.remove(id))).to.equal(ERRORS.FILE_NOT_FOUND);
    }
  });

  it('buffers parts in its own tmpDir, emptied at init and after every write', async () => {
    const options = storeOptions();
    fs.writeFileSync(path.join(options.tmpDir, 'left-by-a-crash'), 'x');
    const own = new TusgateS3Store(options);
    await own.init();
    expect(fs.readdirSync(options.tmpDir)).to.deep.equal([]);

    const data = randomBytes(10 * MiB);
    const id = await create(data.length, own);
    // A body that stalls after 3 MiB: the part being cut sits in tmpDir meanwhile.
    let seen: string[] = [];
    const source = Readable.from(
      (async function* () {
        yield data.subarray(0, 3 * MiB);
        await new Promise((resolve) => setTimeout(resolve, 200));
        seen = fs.readdirSync(options.tmpDir);
        yield data.subarray(3 * MiB, 4 * MiB);
      })(),
      { objectMode: false },
    );
    expect(await own.write(source, id, 0)).to.equal(4 * MiB);
    expect(seen).to.have.length(1);
    expect(fs.readdirSync(options.tmpDir)).to.deep.equal([]);
    // Those 4 MiB wait in `<id>.part`; the next PATCH downloads them into tmpDir too, and removes them.
    expect(await own.write(body(data.subarray(4 * MiB)), id, 4 * MiB)).to.equal(data.length);
    expect(fs.readdirSync(options.tmpDir)).to.deep.equal([]);
    expect((await readAll(own.readRange(id, 0, data.length))).equals(data)).to.equal(true);
  });

  it('keeps what arrived of writes whose body failed midway, resumes there, and ends byte-exact', async () => {
    const data = randomBytes(20 * MiB);
    const id = await create(data.length);
    // 1 MiB waits in `<id>.part`; a PATCH then fails after 9 more MiB: one whole 8 MiB part goes up,
    // and the 2 MiB after it become the new `<id>.part`. @tus/s3-store joins the old tail and the body
    // with a stream that reads one chunk (64 KiB here) ahead, and a failing stream drops what it holds:
    // that chunk may be missing from what is kept (the client sends it again from the offset).
    expect(await store.write(body(data.subarray(0, 1 * MiB)), id, 0)).to.equal(1 * MiB);
    const failure = await rejection(store.write(failingBody(data.subarray(1 * MiB), 9 * MiB), id, 1 * MiB));
    expect((failure as Error).message).to.equal('the client went away');
    const first = await store.storedBytes(id);
    expect(first).to.be.within(10 * MiB - 64 * KiB, 10 * MiB);
    expect(fs.readdirSync(store.tmpDir)).to.deep.equal([]);
    // A failure before a whole part is cut keeps the old tail and the new bytes, as the next tail.
    await rejection(store.write(failingBody(data.subarray(first), 1 * MiB), id, first));
    const stored = await store.storedBytes(id);
    expect(stored).to.be.within(first + 1 * MiB - 64 * KiB, first + 1 * MiB);

    expect(await store.write(body(data.subarray(stored)), id, stored)).to.equal(data.length);
    expect((await readAll(store.readRange(id, 0, data.length))).equals(data)).to.equal(true);
  });

  it('answers 503 (never crashes) when the object store cannot be reached', async () => {
    const down = await newStore({ endpoint: `http://127.0.0.1:${await freePort()}` });
    const unavailable = { status_code: 503 };
    const id = randomBytes(12).toString('hex');
    const attempts: Array<() => Promise<unknown>> = [
      () => down.create(new Upload({ id, size: 10, offset: 0, metadata: {} })),
      () => down.getUpload(id),
      () => down.storedBytes(id),
      () => down.write(body(Buffer.alloc(10)), id, 0),
      () => down.declareUploadLength(id, 10),
      () => down.remove(id),
      () => down.objectInfo(id),
      () => readAll(down.readRange(id, 0, 10)),
    ];
    for (const attempt of attempts) {
      const error = (await rejection(attempt())) as { status_code: number; body: string };
      expect(error).to.include(unavailable);
      expect(error.body).to.match(/^Service Unavailable: .*\n$/);
    }
  });
});
