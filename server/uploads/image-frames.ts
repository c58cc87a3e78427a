import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';

/**
 * What an image's first bytes do not tell: the canvas an animated GIF's frames really need, and the
 * frame size of a JPEG whose metadata runs past the head that image-size reads.
 */

export interface Extent {
  width: number;
  height: number;
}

/** Bytes [start, end) of the stored file. */
export type ReadRange = (start: number, end: number) => Readable;

/** Segments passed over before a JPEG is taken to have no frame header. */
const MAX_JPEG_SEGMENTS = 10_000;

/**
 * The frame size of a JPEG, from its first frame header (SOFn), found by walking the segments'
 * lengths with random access: only each segment's four header bytes are read, however large its
 * metadata (ICC profiles, XMP, depth maps). Undefined when the walk meets anything but a segment
 * before a frame header.
 */
export async function jpegFrameSize(size: number, readRange: ReadRange): Promise<Extent | undefined> {
  let offset = 2; // past SOI
  for (let segment = 0; segment < MAX_JPEG_SEGMENTS && offset + 4 <= size; segment++) {
    const header = await buffer(readRange(offset, Math.min(size, offset + 9)));
    if (header[0] !== 0xff) return undefined;
    const marker = header[1]!;
    if (marker === 0xff) {
      offset += 1; // a fill byte
      continue;
    }
    // Markers that stand alone: TEM, RSTn, SOI.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      offset += 2;
      continue;
    }
    // The end of the image, or scan data, before any frame header.
    if (marker === 0xd9 || marker === 0xda) return undefined;
    // SOF0–SOF15; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frame headers.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (header.length < 9) return undefined;
      const height = header.readUInt16BE(5);
      const width = header.readUInt16BE(7);
      return width > 0 && height > 0 ? { width, height } : undefined;
    }
    offset += 2 + header.readUInt16BE(2);
  }
  return undefined;
}

/** Reads a stream front to back, a few bytes at a time, without holding more than one chunk. */
class SequentialReader {
  private bytes: Buffer = Buffer.alloc(0);
  private at = 0;
  private readonly chunks: AsyncIterator<Buffer>;

  constructor(stream: Readable) {
    this.chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** The next `n` bytes, or undefined when the stream ends first. */
  async take(n: number): Promise<Buffer | undefined> {
    while (this.bytes.length - this.at < n) {
      const next = await this.chunks.next();
      if (next.done) return undefined;
      this.bytes = Buffer.concat([this.bytes.subarray(this.at), next.value]);
      this.at = 0;
    }
    this.at += n;
    return this.bytes.subarray(this.at - n, this.at);
  }

  /** Passes over `n` bytes; false when the stream ends first. */
  async skip(n: number): Promise<boolean> {
    while (this.bytes.length - this.at < n) {
      n -= this.bytes.length - this.at;
      const next = await this.chunks.next();
      if (next.done) return false;
      this.bytes = next.value;
      this.at = 0;
    }
    this.at += n;
    return true;
  }

  /** Passes over a GIF data sub-block chain, up to its zero-length terminator; false at the end. */
  async skipSubBlocks(): Promise<boolean> {
    for (;;) {
      const length = this.at < this.bytes.length ? this.bytes[this.at++]! : (await this.take(1))?.[0];
      if (length === undefined) return false;
      if (length === 0) return true;
      if (!(await this.skip(length))) return false;
    }
  }

  async close(): Promise<void> {
    await this.chunks.return?.();
  }
}

const colorTableBytes = (packed: number) => (packed & 0x80 ? 3 * 2 ** ((packed & 0x07) + 1) : 0);

/**
 * The canvas a GIF needs: its logical screen, grown to hold every frame. The screen in the header
 * may say 10×10 while a frame says 30000×30000, and decoders size their buffers by the frame. The
 * file is read front to back (frames' data is passed over, never decoded). The walk stops at the
 * trailer, or at anything that is not a GIF block, keeping what it found so far.
 */
export async function gifCanvas(size: number, readRange: ReadRange): Promise<Extent | undefined> {
  const reader = new SequentialReader(readRange(0, size));
  try {
    const screen = await reader.take(13);
    if (!screen) return undefined;
    let width = screen.readUInt16LE(6);
    let height = screen.readUInt16LE(8);
    if (!(await reader.skip(colorTableBytes(screen[10]!)))) return { width, height };
    for (;;) {
      const introducer = (await reader.take(1))?.[0];
      if (introducer === 0x21) {
        // An extension: its label, then its data as sub-blocks.
        if (!(await reader.skip(1)) || !(await reader.skipSubBlocks())) break;
      } else if (introducer === 0x2c) {
        const frame = await reader.take(9);
        if (!frame) break;
        width = Math.max(width, frame.readUInt16LE(0) + frame.readUInt16LE(4));
        height = Math.max(height, frame.readUInt16LE(2) + frame.readUInt16LE(6));
        // The local colour table, the LZW code size, then the image data as sub-blocks.
        if (!(await reader.skip(colorTableBytes(frame[8]!) + 1)) || !(await reader.skipSubBlocks())) break;
      } else {
        break; // the trailer (0x3b), the end of the file, or not a block
      }
    }
    return { width, height };
  } finally {
    await reader.close();
  }
}
