import { randomBytes } from 'node:crypto';

/** Small files whose first bytes are what their type says (enough for magic-number detection). */
export const PNG = Buffer.concat([
  Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex'),
  Buffer.alloc(64, 7),
]);
/** A JPEG head: SOI, a JFIF APP0 segment and a baseline SOF0 frame header of 32×16 pixels. */
export const JPEG = Buffer.concat([
  Buffer.from('ffd8ffe000104a46494600010100000100010000', 'hex'),
  Buffer.from('ffc0001108001000200301220002110103110100', 'hex'),
  Buffer.alloc(64, 3),
]);
export const GIF = Buffer.concat([Buffer.from('GIF89a', 'ascii'), Buffer.alloc(64, 1)]);
/** A minimal ISO base media (MP4) file: an `ftyp` box with the isom brand, then an `mdat` box. */
export const MP4 = Buffer.concat([
  Buffer.from('000000206674797069736f6d0000020069736f6d69736f32617663316d703431', 'hex'),
  Buffer.from('00000108' + '6d646174', 'hex'),
  Buffer.alloc(256, 0),
]);
export const TEXT = Buffer.from('just some plain text\n'.repeat(10), 'utf8');

/** A well-formed MP4 of exactly `size` bytes: `ftyp`, then an `mdat` box of random bytes. */
export function mp4OfSize(size: number): Buffer {
  const ftyp = MP4.subarray(0, 32);
  const mdat = Buffer.alloc(8);
  mdat.writeUInt32BE(size - ftyp.length);
  mdat.write('mdat', 4, 'latin1');
  return Buffer.concat([ftyp, mdat, randomBytes(size - ftyp.length - mdat.length)]);
}

/** A PNG head declaring `width`×`height` pixels. */
export function pngOfSize(width: number, height: number): Buffer {
  const png = Buffer.from(PNG);
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  return png;
}

/** A PCM WAV file (mono, 8 kHz, 8 bit) lasting exactly `seconds`, written byte by byte. */
export function wavOfDuration(seconds: number): Buffer {
  const rate = 8000;
  const samples = Math.round(seconds * rate);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + samples, 4);
  header.write('WAVEfmt ', 8, 'latin1');
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate, 28); // byte rate
  header.writeUInt16LE(1, 32); // block align
  header.writeUInt16LE(8, 34); // bits per sample
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(samples, 40);
  return Buffer.concat([header, Buffer.alloc(samples, 128)]);
}

/** An ISO base media box: a 32-bit size, the type, the payload. */
export function box(type: string, ...payload: Buffer[]): Buffer {
  const body = Buffer.concat(payload);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length);
  head.write(type, 4, 'latin1');
  return Buffer.concat([head, body]);
}

/**
 * A video-only MP4 lasting `seconds`, with its `moov` box after the media data (as cameras and
 * many encoders write it): `ftyp`, `mdat`, then `moov` holding the movie header (`mvhd`).
 */
export function mp4WithMoovAtEnd(seconds: number, mediaBytes = 64 * 1024): Buffer {
  const mvhd = Buffer.alloc(100);
  mvhd.writeUInt32BE(1000, 12); // timescale: milliseconds
  mvhd.writeUInt32BE(Math.round(seconds * 1000), 16);
  mvhd.writeUInt32BE(0x00010000, 20); // rate 1.0
  mvhd.writeUInt16BE(0x0100, 24); // volume 1.0
  mvhd.writeUInt32BE(0x00010000, 36); // identity matrix
  mvhd.writeUInt32BE(0x00010000, 52);
  mvhd.writeUInt32BE(0x40000000, 68);
  mvhd.writeUInt32BE(2, 96); // next track id
  return Buffer.concat([MP4.subarray(0, 32), box('mdat', randomBytes(mediaBytes)), box('moov', box('mvhd', mvhd))]);
}

/**
 * A GIF whose header gives a `screen` of [width, height] and whose one frame is `frame` [width,
 * height] at the origin: one colour, a minimal LZW stream, then the trailer.
 */
export function gifWithFrame(screen: [number, number], frame: [number, number]): Buffer {
  const header = Buffer.alloc(13);
  header.write('GIF89a', 0, 'latin1');
  header.writeUInt16LE(screen[0], 6);
  header.writeUInt16LE(screen[1], 8);
  const descriptor = Buffer.alloc(10);
  descriptor[0] = 0x2c;
  descriptor.writeUInt16LE(frame[0], 5);
  descriptor.writeUInt16LE(frame[1], 7);
  // LZW minimum code size 2, one sub-block of two bytes, the terminator, then the trailer.
  return Buffer.concat([header, descriptor, Buffer.from([2, 2, 0x4c, 0x01, 0, 0x3b])]);
}

/**
 * A baseline JPEG of `width`×`height` whose frame header comes after `metadataBytes` (or a little
 * more) of APP2 segments, as large ICC profiles put it.
 */
export function jpegAfterMetadata(width: number, height: number, metadataBytes: number): Buffer {
  const segments: Buffer[] = [Buffer.from('ffd8', 'hex')];
  for (let written = 0; written < metadataBytes; written += 0xffff) {
    const segment = Buffer.alloc(2 + 0xffff, 0x20);
    segment.writeUInt16BE(0xffe2, 0);
    segment.writeUInt16BE(0xffff, 2);
    segments.push(segment);
  }
  const frame = Buffer.from('ffc0001108000000000301220002110103110100', 'hex');
  frame.writeUInt16BE(height, 5);
  frame.writeUInt16BE(width, 7);
  return Buffer.concat([...segments, frame, Buffer.alloc(64, 3), Buffer.from('ffd9', 'hex')]);
}

/** A FLAC file of one second (44.1 kHz, mono, 16 bit) with its STREAMINFO block and no frames. */
export function flacHeader(): Buffer {
  const streamInfo = Buffer.alloc(34);
  streamInfo.writeUInt16BE(4096, 0);
  streamInfo.writeUInt16BE(4096, 2);
  // Sample rate (20 bits), channels - 1 (3), bits per sample - 1 (5), total samples (36).
  streamInfo.writeBigUInt64BE((44100n << 44n) | (15n << 36n) | 44100n, 10);
  return Buffer.concat([Buffer.from('fLaC', 'latin1'), Buffer.from([0x80, 0, 0, 34]), streamInfo]);
}
