import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';

/**
 * The duration an ISO base media file (MP4, MOV, M4A, 3GP) declares in its movie header (`mvhd`),
 * found by walking box headers with random access: the `moov` box may be at the start or the end,
 * and the `mdat` before it is skipped, not read. music-metadata derives a duration from audio tracks
 * only; this covers video without sound. `readRange` gives bytes [start, end) as a stream, or as a
 * buffer when the caller holds the whole file.
 */
export async function mp4MovieDuration(size: number, readRange: (start: number, end: number) => Readable | Buffer): Promise<number | undefined> {
  const read = async (start: number, length: number): Promise<Buffer> => {
    const range = readRange(start, Math.min(size, start + length));
    return Buffer.isBuffer(range) ? range : buffer(range);
  };
  /** [offset of the body, end of the box] of the first box of `type` in [start, end). */
  const find = async (type: string, start: number, end: number): Promise<[number, number] | undefined> => {
    let offset = start;
    for (let boxes = 0; offset + 8 <= end && boxes < 10_000; boxes++) {
      const head = await read(offset, 16);
      if (head.length < 8) return undefined;
      let length = head.readUInt32BE(0);
      let headerLength = 8;
      if (length === 1) {
        if (head.length < 16) return undefined;
        length = Number(head.readBigUInt64BE(8));
        headerLength = 16;
      } else if (length === 0) {
        length = end - offset;
      }
      if (length < headerLength) return undefined;
      if (head.toString('latin1', 4, 8) === type) return [offset + headerLength, Math.min(end, offset + length)];
      offset += length;
    }
    return undefined;
  };
  const moov = await find('moov', 0, size);
  if (!moov) return undefined;
  const mvhd = await find('mvhd', moov[0], moov[1]);
  if (!mvhd) return undefined;
  const body = await read(mvhd[0], 32);
  const version = body[0];
  const [timescale, duration] =
    version === 1 && body.length >= 32
      ? [body.readUInt32BE(20), Number(body.readBigUInt64BE(24))]
      : body.length >= 20
        ? [body.readUInt32BE(12), body.readUInt32BE(16)]
        : [0, 0];
  return timescale > 0 ? duration / timescale : undefined;
}
