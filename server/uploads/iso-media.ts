import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';

/** What an ISO base media file (MP4, MOV, M4A, 3GP) says of itself in its boxes. */
export interface IsoFacts {
  /** The brands of its `ftyp` box, major first: `isom/iso2/avc1/mp41`. */
  container?: string;
  /** Seconds: the movie header's duration, else the fragments' (`mehd`, or the first track's runs). */
  duration?: number;
  /** The coding of each track's samples, tracks joined by `+`: `H.264+AAC`. */
  codec?: string;
  sampleRate?: number;
  channels?: number;
}

/** Names of common sample entry types; others are given as their four characters. */
const CODECS: Record<string, string> = {
  avc1: 'H.264', avc3: 'H.264', hvc1: 'HEVC', hev1: 'HEVC', av01: 'AV1', vp08: 'VP8', vp09: 'VP9', mp4v: 'MPEG-4 Visual',
  mp4a: 'AAC', alac: 'ALAC', 'ac-3': 'AC-3', 'ec-3': 'E-AC-3', Opus: 'Opus', fLaC: 'FLAC', '.mp3': 'MP3', ulaw: 'μ-law', alaw: 'A-law',
  lpcm: 'PCM', sowt: 'PCM', twos: 'PCM', samr: 'AMR', sawb: 'AMR-WB', jpeg: 'JPEG', apcn: 'ProRes', apch: 'ProRes', apcs: 'ProRes',
};

/** Box headers read while looking for boxes; a file with more is not walked further. */
const MAX_BOXES = 100_000;
/** The most of one fragment's sample records read to add up a duration. */
const MAX_RUN_BYTES = 4 * 1024 * 1024;
/** Bytes fetched per read of storage: box headers close together come from one read. */
const BLOCK_BYTES = 64 * 1024;

/** Four printable characters (`©` begins the names of iTunes tags). */
const BOX_TYPE = /^[\x20-\x7e\xa9]{4}$/;

/** A box whose size or type cannot be: the file is not an ISO base media file, or is cut short. */
export class BrokenIsoFile extends Error {
  constructor(type: string, offset: number) {
    super(`no valid box at offset ${offset} (${JSON.stringify(type)})`);
  }
}

interface Box {
  type: string;
  /** Offset of the box's body. */
  body: number;
  /** Offset just past the box. */
  end: number;
}

/**
 * Reads an ISO base media file's facts by walking its box tree with random access: the `moov` box
 * may come before or after the media data, which is skipped, never read. `head` is the file's first
 * bytes (all of a small file); the rest comes from `readRange` ([start, end) of the stored file).
 * Only box headers and the few small boxes that hold facts are read. Throws BrokenIsoFile when a
 * box's size or type is impossible.
 */
export async function isoMediaFacts(size: number, head: Buffer, readRange: (start: number, end: number) => Readable): Promise<IsoFacts> {
  let block = { start: 0, bytes: head };
  const read = async (start: number, length: number): Promise<Buffer> => {
    const end = Math.min(size, start + length);
    if (start >= block.start && end <= block.start + block.bytes.length) return block.bytes.subarray(start - block.start, end - block.start);
    const bytes = await buffer(readRange(start, Math.min(size, start + Math.max(length, BLOCK_BYTES))));
    if (bytes.length <= BLOCK_BYTES) block = { start, bytes };
    return bytes.subarray(0, end - start);
  };
  let walked = 0;
  /** The boxes directly inside [start, end), in order, or of one type only. */
  async function* boxes(start: number, end: number): AsyncGenerator<Box> {
    for (let offset = start; offset + 8 <= end && walked++ < MAX_BOXES; ) {
      const header = await read(offset, 16);
      if (header.length < 8) return;
      let length = header.readUInt32BE(0);
      let headerLength = 8;
      if (length === 1) {
        if (header.length < 16) return;
        length = Number(header.readBigUInt64BE(8));
        headerLength = 16;
      } else if (length === 0) {
        length = end - offset;
      }
      const type = header.toString('latin1', 4, 8);
      // Zeros where a box would start: padding at the end (some writers leave it), not a broken file.
      if (type === '\0\0\0\0') return;
      if (length < headerLength || offset + length > end || !BOX_TYPE.test(type)) throw new BrokenIsoFile(type, offset);
      yield { type, body: offset + headerLength, end: offset + length };
      offset += length;
    }
  }
  const child = async (parent: Box | undefined, type: string): Promise<Box | undefined> => {
    if (!parent) return undefined;
    for await (const box of boxes(parent.body, parent.end)) if (box.type === type) return box;
    return undefined;
  };

  const facts: IsoFacts = {};
  let moov: Box | undefined;
  const fragments: Box[] = [];
  for await (const box of boxes(0, size)) {
    if (box.type === 'ftyp') {
      const container = brands(await read(box.body, Math.min(box.end - box.body, 256)));
      if (container) facts.container = container;
    } else if (box.type === 'moov') moov ??= box;
    else if (box.type === 'moof') fragments.push(box);
  }
  if (!moov) return facts;

  const mvhd = await child(moov, 'mvhd');
  const movie = mvhd ? timing(await read(mvhd.body, 32)) : undefined;
  if (movie) facts.duration = seconds(movie.units, movie.timescale);
  const mehd = await child(await child(moov, 'mvex'), 'mehd');
  if (!facts.duration && movie && mehd) {
    // A fragmented file's movie header often says 0; its extends header has the whole length.
    const body = await read(mehd.body, 12);
    const units = body[0] === 1 ? (body.length >= 12 ? Number(body.readBigUInt64BE(4)) : 0) : body.length >= 8 ? body.readUInt32BE(4) : 0;
    facts.duration = seconds(units, movie.timescale);
  }

  const codecs: string[] = [];
  let firstTrack: { id: number; timescale: number } | undefined;
  for await (const trak of boxes(moov.body, moov.end)) {
    if (trak.type !== 'trak') continue;
    const mdia = await child(trak, 'mdia');
    const mdhd = await child(mdia, 'mdhd');
    const tkhd = await child(trak, 'tkhd');
    const hdlr = await child(mdia, 'hdlr');
    // The handler type follows version, flags and four reserved bytes: `soun` for audio.
    const handler = hdlr ? (await read(hdlr.body + 8, 4)).toString('latin1') : '';
    const stsd = await child(await child(await child(mdia, 'minf'), 'stbl'), 'stsd');
    if (mdhd && tkhd && !firstTrack) {
      const track = await read(tkhd.body, 24);
      const media = timing(await read(mdhd.body, 32));
      if (track.length >= 24 && media) firstTrack = { id: track.readUInt32BE(track[0] === 1 ? 20 : 12), timescale: media.timescale };
    }
    if (!stsd) continue;
    // A sample description box: version and flags, an entry count, then sample entries (boxes).
    const names: string[] = [];
    for await (const entry of boxes(stsd.body + 8, stsd.end)) {
      const name = CODECS[entry.type] ?? entry.type.replace(/[^\w.-]/g, '');
      if (name && !names.includes(name)) names.push(name);
      if (handler === 'soun' && facts.sampleRate === undefined) {
        // An audio sample entry: 8 bytes of SampleEntry, 8 reserved, channel count, sample size,
        // 4 more, then the sample rate as 16.16 fixed point.
        const entryBody = await read(entry.body, 28);
        if (entryBody.length >= 28) {
          let channels = entryBody.readUInt16BE(16);
          const rate = entryBody.readUInt16BE(24);
          if (entry.type === 'mp4a') {
            // MP4 writers put 2 in the entry whatever the stream has; AAC's own configuration, in
            // the entry's `esds` box, says. QuickTime's sound entries of version 1 and 2 are longer.
            const children = entry.body + 28 + ([0, 16, 36][entryBody.readUInt16BE(8)] ?? 0);
            const esds = await child({ type: 'mp4a', body: children, end: entry.end }, 'esds');
            if (esds) channels = aacChannels(await read(esds.body, Math.min(esds.end - esds.body, 128))) ?? channels;
          }
          if (channels > 0) facts.channels = channels;
          if (rate > 0) facts.sampleRate = rate;
        }
      }
    }
    if (names.length > 0) codecs.push(names.join('/'));
  }
  if (codecs.length > 0) facts.codec = [...new Set(codecs)].join('+');
  if (!facts.duration && firstTrack && fragments.length > 0) {
    facts.duration = seconds(await fragmentedDuration(fragments, firstTrack.id), firstTrack.timescale);
  }
  if (facts.duration === undefined) delete facts.duration;
  return facts;

  /** The sum of the sample durations the fragments' runs give one track, in its timescale units. */
  async function fragmentedDuration(moofs: Box[], trackId: number): Promise<number> {
    let units = 0;
    for (const moof of moofs) {
      for await (const traf of boxes(moof.body, moof.end)) {
        if (traf.type !== 'traf') continue;
        const tfhd = await child(traf, 'tfhd');
        if (!tfhd) continue;
        const t = await read(tfhd.body, 40);
        if (t.length < 8 || t.readUInt32BE(4) !== trackId) continue;
        // tfhd's flags say which optional fields follow the track id; the default duration is the third.
        const tfhdFlags = t.readUInt32BE(0) & 0xffffff;
        let at = 8 + (tfhdFlags & 0x1 ? 8 : 0) + (tfhdFlags & 0x2 ? 4 : 0);
        const defaultDuration = tfhdFlags & 0x8 && t.length >= at + 4 ? t.readUInt32BE(at) : 0;
        for await (const trun of boxes(traf.body, traf.end)) {
          if (trun.type !== 'trun') continue;
          const r = await read(trun.body, 8);
          if (r.length < 8) continue;
          const flags = r.readUInt32BE(0) & 0xffffff;
          const count = r.readUInt32BE(4);
          if (!(flags & 0x100)) {
            units += count * defaultDuration;
            continue;
          }
          // Each sample's record holds its duration first, after the run's optional offset and flags.
          const recordBytes = 4 * [0x100, 0x200, 0x400, 0x800].filter((bit) => flags & bit).length;
          at = 8 + (flags & 0x1 ? 4 : 0) + (flags & 0x4 ? 4 : 0);
          const length = Math.min(count * recordBytes, trun.end - trun.body - at);
          if (length > MAX_RUN_BYTES) return 0;
          const records = await read(trun.body + at, length);
          for (let i = 0; i + 4 <= records.length; i += recordBytes) units += records.readUInt32BE(i);
        }
      }
    }
    return units;
  }
}

/** Channel counts of AAC's channel configurations 1–7 (0: given in the stream instead). */
const AAC_CHANNELS = [undefined, 1, 2, 3, 4, 5, 6, 8];

/**
 * The channel count an `esds` box's AAC configuration gives: after version and flags come an ES
 * descriptor, inside it a decoder configuration, inside that the AudioSpecificConfig, whose bits
 * are an object type (5, or 11 when the first 5 are all ones), a sampling frequency index (4, then
 * 24 more when it is 15) and the channel configuration (4).
 */
function aacChannels(esds: Buffer): number | undefined {
  let at = 4;
  /** Steps into the next descriptor if it has `tag` (its length: up to four 7-bit bytes). */
  const enter = (tag: number): boolean => {
    if (esds[at++] !== tag) return false;
    for (let i = 0; i < 4 && (esds[at++]! & 0x80) !== 0; i++);
    return at <= esds.length;
  };
  if (!enter(0x03)) return undefined;
  const flags = esds[at + 2] ?? 0;
  at += 3 + (flags & 0x80 ? 2 : 0);
  if (flags & 0x40) at += 1 + (esds[at] ?? 0);
  if (flags & 0x20) at += 2;
  if (!enter(0x04)) return undefined;
  at += 13; // object type, stream type, buffer size, bit rates
  if (!enter(0x05) || at + 5 > esds.length) return undefined;
  const bits = esds.readUInt32BE(at) * 256 + esds[at + 4]!; // 40 bits, enough for every field before the channels
  let offset = 40;
  const take = (n: number) => Math.floor(bits / 2 ** (offset -= n)) % 2 ** n;
  if (take(5) === 31) take(6);
  if (take(4) === 15) take(24);
  return AAC_CHANNELS[take(4)];
}

/** `ftyp`: a major brand, a minor version, then compatible brands. */
function brands(body: Buffer): string | undefined {
  const names: string[] = [];
  for (let at = 0; at + 4 <= body.length; at += 4) {
    if (at === 4) continue; // the minor version
    const name = body.toString('latin1', at, at + 4).replace(/\W/g, '');
    if (name && !names.includes(name)) names.push(name);
  }
  return names.length > 0 ? names.join('/') : undefined;
}

/**
 * The timescale and duration of a movie or media header (`mvhd`, `mdhd`): after version and flags
 * come creation and modification times, 32-bit in version 0 and 64-bit in version 1.
 */
function timing(body: Buffer): { timescale: number; units: number } | undefined {
  if (body[0] === 1) return body.length >= 32 ? { timescale: body.readUInt32BE(20), units: Number(body.readBigUInt64BE(24)) } : undefined;
  if (body.length < 20) return undefined;
  const units = body.readUInt32BE(16);
  // All ones: the duration is not known.
  return { timescale: body.readUInt32BE(12), units: units === 0xffffffff ? 0 : units };
}

function seconds(units: number, timescale: number): number | undefined {
  const value = units / timescale;
  return units > 0 && timescale > 0 && Number.isFinite(value) ? value : undefined;
}
