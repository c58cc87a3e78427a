import { imageSize } from 'image-size';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { fromBlob, fromBuffer } from 'strtok3';
import { baseType, ISO_MEDIA_TYPES } from './content-type.js';
import { gifCanvas, jpegFrameSize, type Extent } from './image-frames.js';
import { BrokenIsoFile, isoMediaFacts } from './iso-media.js';

export interface MediaLimits {
  maxDurationSeconds?: number;
  minDurationSeconds?: number;
  maxImagePixels: number;
}

export type MediaFacts = Record<string, number | string>;

export type MediaVerdict = { ok: true; facts: MediaFacts } | { ok: false; status: number; message: string };

/**
 * How much of a file's start the caller hands over: image-size reads dimensions from the header,
 * and half a megabyte covers most JPEGs' metadata (larger metadata is walked past); smaller files
 * come whole.
 */
export const MEDIA_HEAD_BYTES = 512 * 1024;

export interface MediaSource {
  size: number;
  /** The file's first bytes: at least `mediaHeadBytes(type, size)` of them. */
  head: Buffer;
  readRange(start: number, end: number): Readable;
}

/**
 * The stored file as a Blob for strtok3's random-access tokenizer: each read the parser makes is one
 * range read of storage (a file, or an S3 object), so only headers and index boxes are fetched.
 */
function rangeBlob(source: MediaSource): Blob {
  const slice = (start = 0, end = source.size) => ({
    async arrayBuffer(): Promise<ArrayBuffer> {
      const bytes = await buffer(source.readRange(start, Math.min(end, source.size)));
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
    },
  });
  return { size: source.size, type: '', slice } as unknown as Blob;
}

const refuse = (status: number, message: string): MediaVerdict => ({ ok: false, status, message });

/** Width and height from the image's head, as image-size reads them; undefined when it cannot. */
function headerExtent(head: Buffer): Extent | undefined {
  try {
    const { width, height } = imageSize(head);
    return width && height ? { width, height } : undefined;
  } catch {
    return undefined;
  }
}

async function probeImage(type: string, source: MediaSource, limits: MediaLimits): Promise<MediaVerdict> {
  let extent = headerExtent(source.head);
  // A JPEG's frame header may lie past its head, behind large metadata.
  if (!extent && type === 'image/jpeg' && source.size > source.head.length) extent = await jpegFrameSize(source.size, source.readRange);
  if (!extent) return refuse(415, 'Unsupported Media Type: the image dimensions cannot be read');
  // A GIF's frames may be larger than the screen its header gives.
  if (type === 'image/gif') extent = (await gifCanvas(source.size, source.readRange)) ?? extent;
  const { width, height } = extent;
  if (width * height > limits.maxImagePixels) {
    return refuse(422, `Unprocessable Content: the image is ${width}×${height} pixels, more than the limit of ${limits.maxImagePixels}`);
  }
  return { ok: true, facts: { width, height } };
}

/**
 * Other audio and video go to music-metadata, which picks its parser by file extension; data files
 * are named by upload id, so the verified type names the parser instead. Types with no parser here
 * (AVI) get no facts.
 */
const PARSER_BY_TYPE: Record<string, string> = {
  'video/webm': '.mkv', 'audio/webm': '.mkv', 'video/matroska': '.mkv',
  'audio/ogg': '.ogg', 'video/ogg': '.ogg', 'application/ogg': '.ogg', 'audio/opus': '.ogg',
  'audio/wav': '.wav', 'audio/mpeg': '.mp3', 'audio/aac': '.aac', 'audio/flac': '.flac', 'audio/aiff': '.aiff',
};

/** The facts of other audio and video, from music-metadata; undefined when it cannot parse the file. */
async function parsedFacts(extension: string, source: MediaSource): Promise<MediaFacts | undefined> {
  // Loaded when first needed: ISO files, the common case, never need it.
  const { parseFromTokenizer } = await import('music-metadata');
  const whole = source.head.length >= source.size;
  const tokenizer = whole ? fromBuffer(source.head) : fromBlob(rangeBlob(source));
  let format;
  try {
    tokenizer.fileInfo.path = `upload${extension}`;
    // The tokenizer reads by random access: headers and index, never the whole file.
    ({ format } = await parseFromTokenizer(tokenizer, { duration: true, skipCovers: true }));
  } catch {
    return undefined;
  } finally {
    await tokenizer.close();
  }
  const facts: MediaFacts = {};
  if (format.duration !== undefined && Number.isFinite(format.duration)) facts.duration = format.duration;
  if (format.codec) facts.codec = format.codec;
  if (format.container) facts.container = format.container;
  if (format.sampleRate) facts.sampleRate = format.sampleRate;
  if (format.numberOfChannels) facts.channels = format.numberOfChannels;
  return facts;
}

const refuseBroken = (error: unknown): undefined => {
  if (error instanceof BrokenIsoFile) return undefined;
  throw error;
};

async function probeTimed(type: string, source: MediaSource, limits: MediaLimits): Promise<MediaVerdict> {
  const limited = limits.maxDurationSeconds !== undefined || limits.minDurationSeconds !== undefined;
  const extension = PARSER_BY_TYPE[type];
  let facts: MediaFacts | undefined;
  // ISO base media files have their boxes read here, see iso-media.ts.
  if (ISO_MEDIA_TYPES.includes(type)) facts = await isoMediaFacts(source.size, source.head, source.readRange).then((iso) => ({ ...iso }), refuseBroken);
  else if (extension) facts = await parsedFacts(extension, source);
  else return limited ? refuse(422, `Unprocessable Content: the duration of ${type} files cannot be read, and duration limits apply`) : { ok: true, facts: {} };
  if (!facts) return refuse(415, 'Unsupported Media Type: the file cannot be parsed as audio or video');
  if (typeof facts.duration === 'number') facts.duration = Math.round(facts.duration * 1000) / 1000;
  const { maxDurationSeconds: max, minDurationSeconds: min } = limits;
  if (limited) {
    const duration = facts.duration as number | undefined;
    if (duration === undefined) return refuse(422, 'Unprocessable Content: the media duration cannot be read, and duration limits apply');
    if (max !== undefined && duration > max) return refuse(422, `Unprocessable Content: the media lasts ${duration} s, longer than the limit of ${max} s`);
    if (min !== undefined && duration < min) return refuse(422, `Unprocessable Content: the media lasts ${duration} s, shorter than the minimum of ${min} s`);
  }
  return { ok: true, facts };
}

const isTimed = (type: string) => type.startsWith('audio/') || type.startsWith('video/') || type === 'application/ogg';

/**
 * How many of the file's first bytes `probeMedia` needs in `source.head` for a verified type: an
 * image's header (up to MEDIA_HEAD_BYTES), or the whole of an audio or video file small enough to be
 * parsed from memory. Larger audio and video are parsed from the file, other types not at all.
 */
export function mediaHeadBytes(verifiedType: string, size: number): number {
  const type = baseType(verifiedType);
  if (type.startsWith('image/')) return Math.min(size, MEDIA_HEAD_BYTES);
  if (isTimed(type)) return size <= MEDIA_HEAD_BYTES ? size : 0;
  return 0;
}

/**
 * Reads the facts of a verified media file (dimensions of an image, duration of audio or video) and
 * checks them against the configured limits. Other types pass with no facts.
 */
export async function probeMedia(verifiedType: string, source: MediaSource, limits: MediaLimits): Promise<MediaVerdict> {
  const type = baseType(verifiedType);
  if (type.startsWith('image/')) return probeImage(type, source, limits);
  if (isTimed(type)) return probeTimed(type, source, limits);
  return { ok: true, facts: {} };
}
