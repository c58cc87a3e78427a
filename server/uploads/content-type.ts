import { fileTypeFromBuffer } from 'file-type';

/** How many leading bytes the content check reads. */
export const CONTENT_HEAD_BYTES = 16 * 1024;

/** The media type without parameters, lower-cased: `Video/WebM; codecs=vp9` → `video/webm`. */
export function baseType(type: string): string {
  return type.split(';')[0]!.trim().toLowerCase();
}

/**
 * Names of one format: browsers and systems name some files differently (Chromium sends an .m4a as
 * `audio/x-m4a`, an .avi as `video/x-msvideo`), and an allowed type admits its other names.
 */
const SAME_FORMAT = [
  ['audio/mp4', 'audio/x-m4a'],
  ['video/avi', 'video/x-msvideo'],
  ['audio/wav', 'audio/x-wav', 'audio/wave'],
  ['audio/mpeg', 'audio/mp3'],
  ['video/quicktime', 'video/mov'],
  ['image/jpeg', 'image/jpg'],
  ['audio/flac', 'audio/x-flac'],
  ['audio/aiff', 'audio/x-aiff'],
  ['audio/aac', 'audio/x-aac'],
  ['video/mp4', 'video/x-m4v'],
];

/** The names of `base`'s format: itself and its other names. */
const namesOf = (base: string): readonly string[] => SAME_FORMAT.find((group) => group.includes(base)) ?? [base];

/** The allowed list with the other names of each format in it. */
export function withOtherNames(allowed: readonly string[]): string[] {
  return [...new Set(allowed.flatMap((entry) => namesOf(entry.toLowerCase())))];
}

/** Whether `type` (or another name of its format) is allowed by a list of `type/subtype` or `type/*` entries. */
export function isAllowedType(type: string, allowed: readonly string[]): boolean {
  const base = baseType(type);
  // A wildcard names no type of file; it only allows them.
  if (base.includes('*')) return false;
  const names = namesOf(base);
  return allowed.some((entry) => {
    const pattern = entry.toLowerCase();
    return pattern.endsWith('/*') ? base.startsWith(pattern.slice(0, -1)) : names.includes(pattern);
  });
}

/** The types detected for ISO base media files (MP4, MOV, M4A, 3GP): one container, read by its boxes. */
export const ISO_MEDIA_TYPES: readonly string[] = ['video/mp4', 'audio/mp4', 'audio/x-m4a', 'video/x-m4v', 'video/quicktime', 'video/3gpp'];

// Declared types and the detected types that satisfy them; another name of a format (SAME_FORMAT)
// is looked up by its first name, and a type not listed is satisfied by itself. A container can
// carry audio or video alone, so the audio and video names of one container accept each other.
const OGG = ['audio/ogg', 'video/ogg', 'application/ogg', 'audio/opus'];
const WEBM = ['video/webm', 'audio/webm', 'video/matroska'];
const ACCEPTED_DETECTIONS: Record<string, readonly string[]> = {
  'video/mp4': ISO_MEDIA_TYPES,
  'audio/mp4': ISO_MEDIA_TYPES,
  'video/quicktime': ISO_MEDIA_TYPES,
  'video/webm': WEBM,
  'audio/webm': WEBM,
  'video/x-matroska': WEBM,
  'video/ogg': OGG,
  'audio/ogg': OGG,
  'audio/opus': OGG,
  'video/avi': ['video/vnd.avi'],
  'audio/aac': ['audio/aac', 'audio/mp4', 'audio/x-m4a'],
};

export type ContentVerdict = { ok: true; verifiedType: string } | { ok: false; detected: string | undefined };

function looksLikeText(head: Buffer): boolean {
  if (head.includes(0)) return false;
  // A multi-byte character may be cut at the end of the head: ignore up to 3 trailing bytes.
  for (let cut = 0; cut <= Math.min(3, head.length); cut++) {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(0, head.length - cut));
      return true;
    } catch {
      // try a shorter prefix
    }
  }
  return false;
}

/**
 * Checks the first bytes of an upload against its declared type (magic numbers via file-type).
 * Text types have no magic number: they pass when the bytes are UTF-8 without NUL bytes. (Text may
 * begin with what a binary format's signature is, "BMI values…" or "ID3 tags…"; a file of that
 * format would have NUL or non-UTF-8 bytes in its head.) The verified type is what the bytes are,
 * named as the detector names it.
 */
export async function checkContent(declared: string, head: Buffer): Promise<ContentVerdict> {
  const base = baseType(declared);
  if (base.startsWith('text/') && looksLikeText(head)) return { ok: true, verifiedType: `${base}; charset=utf-8` };
  const detected = head.length > 0 ? await fileTypeFromBuffer(head) : undefined;
  const detectedMime = detected ? baseType(detected.mime) : undefined;
  if (base.startsWith('text/')) return { ok: false, detected: detectedMime };
  if (!detectedMime) return { ok: false, detected: undefined };
  const accepted = namesOf(base).flatMap((name) => ACCEPTED_DETECTIONS[name] ?? [name]);
  return accepted.includes(detectedMime) ? { ok: true, verifiedType: detectedMime } : { ok: false, detected: detectedMime };
}
