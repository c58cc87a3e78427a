import { Transform, type TransformCallback } from 'node:stream';

/** How far into a body the `file` part's headers are looked for; past this, bytes pass unchanged. */
const SCAN_LIMIT = 64 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n');
const FILE_PART = /^content-disposition:[^\r\n]*;\s*name\s*=\s*"?file"?\s*(;|\r|$)/im;
const EMPTY_FILENAME = /(;\s*filename\s*=\s*)""/i;
/** A name for a part sent as a file without one; the facade never reads part file names. */
const PLACEHOLDER = '"upload"';

/** The boundary of a multipart/form-data body, from its Content-Type. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  const match = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))/i.exec(contentType ?? '');
  return match?.[1] ?? match?.[2];
}

/**
 * Starlette took a part with `filename=""` for a file (OkHttp and Python's requests send an unnamed
 * file so), but busboy reads an empty file name as none, and such a part as a text field. Until
 * the `file` part's headers have passed, this gives an empty file name in them a placeholder; the
 * bytes after them (the chunk itself) pass through untouched.
 */
export class EmptyFilenamePatch extends Transform {
  private readonly delimiter: Buffer;
  private pending: Buffer = Buffer.alloc(0);
  /** Where in `pending` the search for the next part's headers goes on. */
  private searchFrom = 0;
  private done = false;

  constructor(boundary: string) {
    super();
    this.delimiter = Buffer.from(`--${boundary}`, 'latin1');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.done) return callback(null, chunk);
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.scan();
    if (this.done || this.pending.length > SCAN_LIMIT) this.release();
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.release();
    callback();
  }

  /** Looks at each part's headers in turn until the `file` part's, which it mends if need be. */
  private scan(): void {
    while (!this.done) {
      const at = this.pending.indexOf(this.delimiter, this.searchFrom);
      if (at < 0) return;
      const headersAt = at + this.delimiter.length;
      const end = this.pending.indexOf(HEADER_END, headersAt);
      if (end < 0) return;
      const headers = this.pending.toString('latin1', headersAt, end);
      this.searchFrom = end + HEADER_END.length;
      if (!FILE_PART.test(headers)) continue;
      this.done = true;
      if (!EMPTY_FILENAME.test(headers)) return;
      const mended = Buffer.from(headers.replace(EMPTY_FILENAME, `$1${PLACEHOLDER}`), 'latin1');
      this.pending = Buffer.concat([this.pending.subarray(0, headersAt), mended, this.pending.subarray(end)]);
    }
  }

  private release(): void {
    this.done = true;
    if (this.pending.length > 0) this.push(this.pending);
    this.pending = Buffer.alloc(0);
  }
}
