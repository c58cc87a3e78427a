import type { Request } from 'express';
import { LegacyError, validationError, type ValidationItem } from './errors.js';

/**
 * Request-body validation as the original's pydantic v1 models did it, so legacy clients get the
 * same 422 items (and the same coercions: "10" and 10.5 are accepted for an int, a number for a
 * string). Limits that come from configuration are passed in.
 */

const MISSING = Symbol('missing');
type Raw = unknown | typeof MISSING;

class Collector {
  readonly items: ValidationItem[] = [];
  add(loc: Array<string | number>, msg: string, type: string, ctx?: Record<string, unknown>): typeof MISSING {
    this.items.push(ctx ? { loc, msg, type, ctx } : { loc, msg, type });
    return MISSING;
  }
}

function present(value: Raw, loc: Array<string | number>, errors: Collector): boolean {
  if (value === MISSING) {
    errors.add(loc, 'field required', 'value_error.missing');
    return false;
  }
  if (value === null) {
    errors.add(loc, 'none is not an allowed value', 'type_error.none.not_allowed');
    return false;
  }
  return true;
}

/** pydantic v1 `str`: strings, and numbers turned into their text. */
function asString(value: unknown, loc: Array<string | number>, errors: Collector): string | typeof MISSING {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return errors.add(loc, 'str type expected', 'type_error.str');
}

/** pydantic v1 `int`: ints, floats truncated, booleans, and decimal strings (Python's `int()`). */
function asInt(value: unknown, loc: Array<string | number>, errors: Collector): number | typeof MISSING {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'number' && Number.isFinite(value)) return Math.trunc(value);
  if (typeof value === 'string' && value.length <= 4300 && /^\s*[+-]?\d+(?:_\d+)*\s*$/.test(value)) {
    return Number(value.trim().replace(/_/g, ''));
  }
  return errors.add(loc, 'value is not a valid integer', 'type_error.integer');
}

function bounded(
  value: number,
  loc: Array<string | number>,
  errors: Collector,
  { gt, le }: { gt?: number; le?: number },
): number | typeof MISSING {
  if (gt !== undefined && !(value > gt)) {
    return errors.add(loc, `ensure this value is greater than ${gt}`, 'value_error.number.not_gt', { limit_value: gt });
  }
  if (le !== undefined && !(value <= le)) {
    return errors.add(loc, `ensure this value is less than or equal to ${le}`, 'value_error.number.not_le', { limit_value: le });
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(body: Record<string, unknown>, name: string): Raw {
  return Object.prototype.hasOwnProperty.call(body, name) ? body[name] : MISSING;
}

/** Python counts characters in code points, not UTF-16 units. */
function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** Lone surrogates cannot be stored as UTF-8 or put in a URL: they become U+FFFD. */
export function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

const BODY_LIMIT = 1024 * 1024;

/**
 * Reads a JSON request body as FastAPI did: parsed when the type is JSON or absent, an empty body
 * is "missing", and a body of another type is bytes (so "not a valid dict").
 */
export async function readJsonBody(req: Request): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > BODY_LIMIT) throw new LegacyError(413, 'Request body too large');
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return MISSING;
  const text = Buffer.concat(chunks).toString('utf8');
  const type = req.headers['content-type'];
  const mediaType = type?.split(';')[0]!.trim().toLowerCase();
  const isJson = mediaType === undefined || mediaType === 'application/json' || /^application\/[^/]*\+json$/.test(mediaType);
  if (!isJson) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw validationError([
      { loc: ['body', Number(position ?? 0)], msg: 'Expecting value', type: 'value_error.jsondecode' },
    ]);
  }
}

function requireObject(body: unknown): Record<string, unknown> {
  // A JSON `null` body is no body to FastAPI (pydantic v1 reads None as missing).
  if (body === MISSING || body === null) throw validationError([{ loc: ['body'], msg: 'field required', type: 'value_error.missing' }]);
  if (!isObject(body)) throw validationError([{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }]);
  return body;
}

export interface InitiateRequest {
  filename: string;
  file_size: number;
  chunk_size: number;
  file_hash: string | null;
  mime_type: string;
  metadata: Record<string, unknown>;
}

export interface InitiateLimits {
  maxChunkSize: number;
  defaultChunkSize: number;
}

/** `InitiateUploadRequest`. The upper bound of file_size is not here: it is 413 (SPEC §4), checked after. */
export function parseInitiate(body: unknown, limits: InitiateLimits): InitiateRequest {
  const input = requireObject(body);
  const errors = new Collector();

  let filename: string | typeof MISSING = MISSING;
  const rawName = field(input, 'filename');
  if (present(rawName, ['body', 'filename'], errors)) {
    filename = asString(rawName, ['body', 'filename'], errors);
    if (filename !== MISSING) {
      const length = codePoints(filename);
      if (length < 1) {
        filename = errors.add(['body', 'filename'], 'ensure this value has at least 1 characters', 'value_error.any_str.min_length', { limit_value: 1 });
      } else if (length > 255) {
        filename = errors.add(['body', 'filename'], 'ensure this value has at most 255 characters', 'value_error.any_str.max_length', { limit_value: 255 });
      }
    }
  }

  let fileSize: number | typeof MISSING = MISSING;
  const rawSize = field(input, 'file_size');
  if (present(rawSize, ['body', 'file_size'], errors)) {
    fileSize = asInt(rawSize, ['body', 'file_size'], errors);
    if (fileSize !== MISSING) fileSize = bounded(fileSize, ['body', 'file_size'], errors, { gt: 0 });
  }

  let chunkSize: number | typeof MISSING = limits.defaultChunkSize;
  const rawChunk = field(input, 'chunk_size');
  if (rawChunk !== MISSING && present(rawChunk, ['body', 'chunk_size'], errors)) {
    chunkSize = asInt(rawChunk, ['body', 'chunk_size'], errors);
    if (chunkSize !== MISSING) chunkSize = bounded(chunkSize, ['body', 'chunk_size'], errors, { gt: 0, le: limits.maxChunkSize });
  } else if (rawChunk !== MISSING) {
    chunkSize = MISSING;
  }

  let fileHash: string | null | typeof MISSING = null;
  const rawHash = field(input, 'file_hash');
  if (rawHash !== MISSING && rawHash !== null) fileHash = asString(rawHash, ['body', 'file_hash'], errors);

  let mimeType: string | typeof MISSING = MISSING;
  const rawMime = field(input, 'mime_type');
  if (present(rawMime, ['body', 'mime_type'], errors)) mimeType = asString(rawMime, ['body', 'mime_type'], errors);

  let metadata: Record<string, unknown> | typeof MISSING = {};
  const rawMeta = field(input, 'metadata');
  if (rawMeta !== MISSING && present(rawMeta, ['body', 'metadata'], errors)) {
    metadata = isObject(rawMeta) ? rawMeta : errors.add(['body', 'metadata'], 'value is not a valid dict', 'type_error.dict');
  } else if (rawMeta !== MISSING) {
    metadata = MISSING;
  }

  if (errors.items.length > 0) throw validationError(errors.items);
  return {
    filename: wellFormed(filename as string),
    file_size: fileSize as number,
    chunk_size: chunkSize as number,
    file_hash: fileHash as string | null,
    mime_type: mimeType as string,
    metadata: metadata as Record<string, unknown>,
  };
}

export interface CompleteRequest {
  session_id: string;
  file_hash: string | null;
}

/** `CompleteUploadRequest`: its session_id is required but, as in the original, never compared. */
export function parseComplete(body: unknown): CompleteRequest {
  const input = requireObject(body);
  const errors = new Collector();
  let sessionId: string | typeof MISSING = MISSING;
  const rawId = field(input, 'session_id');
  if (present(rawId, ['body', 'session_id'], errors)) sessionId = asString(rawId, ['body', 'session_id'], errors);
  let fileHash: string | null | typeof MISSING = null;
  const rawHash = field(input, 'file_hash');
  if (rawHash !== MISSING && rawHash !== null) fileHash = asString(rawHash, ['body', 'file_hash'], errors);
  if (errors.items.length > 0) throw validationError(errors.items);
  return { session_id: sessionId as string, file_hash: fileHash as string | null };
}

/**
 * A path's `chunk_number` as Python's `int()` reads it; big values keep their digits so the
 * out-of-range message shows what was sent.
 */
export function parseChunkNumber(raw: string): { value: number; text: string } {
  const trimmed = raw.trim();
  if (raw.length > 4300 || !/^[+-]?\d+(?:_\d+)*$/.test(trimmed)) {
    throw validationError([{ loc: ['path', 'chunk_number'], msg: 'value is not a valid integer', type: 'type_error.integer' }]);
  }
  const big = BigInt(trimmed.replace(/_/g, ''));
  return { value: Number(big), text: big.toString() };
}
