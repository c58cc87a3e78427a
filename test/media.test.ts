import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { MEDIA_HEAD_BYTES, probeMedia, type MediaLimits } from '../server/uploads/media.js';
import { box, JPEG, MP4, mp4WithMoovAtEnd, pngOfSize, TEXT, wavOfDuration } from './samples.js';

/** A full box: version and flags, then the payload. */
function full(type: string, version: number, flags: number, ...payload: Buffer[]): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(((version & 0xff) << 24) | (flags & 0xffffff));
  return box(type, head, ...payload);
}

const u32 = (...values: number[]) => Buffer.concat(values.map((value) => { const b = Buffer.alloc(4); b.writeUInt32BE(value); return b; }));

/** A version 0 movie or media header: creation and modification times, timescale, duration. */
const header = (type: 'mvhd' | 'mdhd', timescale: number, units: number) => full(type, 0, 0, u32(0, 0, timescale, units), Buffer.alloc(type === 'mvhd' ? 80 : 4));

/** A track of `handler` (`soun`, `vide`) whose one sample entry is `entry`. */
function track(id: number, handler: string, entry: Buffer, timescale: number, units: number): Buffer {
  const tkhd = full('tkhd', 0, 3, u32(0, 0, id, 0, units), Buffer.alloc(64));
  const hdlr = full('hdlr', 0, 0, u32(0), Buffer.from(handler, 'latin1'), Buffer.alloc(13));
  const stsd = full('stsd', 0, 0, u32(1), entry);
  return box('trak', tkhd, box('mdia', header('mdhd', timescale, units), hdlr, box('minf', box('stbl', stsd))));
}

/**
 * An AAC sample entry: `channels` at `rate` Hz, and with `configured` an `esds` box whose AAC
 * configuration (LC, 44.1 kHz) gives that channel configuration.
 */
function aac(channels: number, rate: number, configured?: number): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(1, 6); // data reference index
  body.writeUInt16BE(channels, 16);
  body.writeUInt16BE(16, 18);
  body.writeUInt32BE(rate * 0x10000, 24);
  if (configured === undefined) return box('mp4a', body);
  // Object type 2 (5 bits), frequency index 4 (4 bits), channel configuration (4 bits), 3 zero bits.
  const config = Buffer.alloc(2);
  config.writeUInt16BE((2 << 11) | (4 << 7) | (configured << 3));
  const decoderConfig = Buffer.concat([Buffer.from([0x40, 0x15]), Buffer.alloc(11), Buffer.from([0x05, 2]), config]);
  const es = Buffer.concat([Buffer.from([0, 1, 0]), Buffer.from([0x04, decoderConfig.length]), decoderConfig, Buffer.from([0x06, 1, 2])]);
  return box('mp4a', body, full('esds', 0, 0, Buffer.from([0x03, es.length]), es));
}
const H264 = box('avc1', Buffer.alloc(78));
const FTYP = MP4.subarray(0, 32);

/** One directory for the files of these tests, removed after them. */
let directory: string | undefined;
let files = 0;

/** A file on disk; `headBytes` below its size makes the probe read the rest from disk. */
function source(data: Buffer, headBytes = MEDIA_HEAD_BYTES) {
  directory ??= fs.mkdtempSync(path.join(os.tmpdir(), 'tusgate-media-'));
  const file = path.join(directory, String(files++));
  fs.writeFileSync(file, data);
  return {
    path: file,
    size: data.length,
    head: data.subarray(0, headBytes),
    readRange: (start: number, end: number) => fs.createReadStream(file, { start, end: end - 1 }),
  };
}

const none: MediaLimits = { maxImagePixels: 100_000_000 };

describe('media probing', () => {
  after(() => {
    if (directory) fs.rmSync(directory, { recursive: true, force: true });
    directory = undefined;
  });

  it('reads image dimensions and refuses more pixels than MAX_IMAGE_PIXELS', async () => {
    expect(await probeMedia('image/png', source(pngOfSize(640, 480)), none)).to.deep.equal({ ok: true, facts: { width: 640, height: 480 } });
    expect(await probeMedia('image/jpeg', source(JPEG), none)).to.deep.equal({ ok: true, facts: { width: 32, height: 16 } });
    const bomb = await probeMedia('image/png', source(pngOfSize(50_000, 50_000)), none);
    expect(bomb).to.include({ ok: false, status: 422 });
    expect((bomb as { message: string }).message).to.match(/50000×50000/);
  });

  it('reads the exact duration of a WAV and applies MIN and MAX_MEDIA_DURATION_SECONDS', async () => {
    const wav = source(wavOfDuration(2.5));
    const probed = await probeMedia('audio/wav', wav, none);
    expect(probed.ok).to.equal(true);
    expect((probed as unknown as { facts: { duration: number } }).facts.duration).to.equal(2.5);
    expect(await probeMedia('audio/wav', wav, { ...none, maxDurationSeconds: 3 })).to.have.property('ok', true);
    expect(await probeMedia('audio/wav', wav, { ...none, maxDurationSeconds: 2 })).to.include({ ok: false, status: 422 });
    expect(await probeMedia('audio/wav', wav, { ...none, minDurationSeconds: 3 })).to.include({ ok: false, status: 422 });
  });

  it('refuses audio or video that cannot be parsed, and an unknown duration when limits apply', async () => {
    expect(await probeMedia('audio/wav', source(Buffer.concat([Buffer.from('RIFF'), TEXT])), none)).to.include({ ok: false, status: 415 });
    expect(await probeMedia('video/mp4', source(MP4), none)).to.have.property('ok', true);
    expect(await probeMedia('video/mp4', source(MP4), { ...none, maxDurationSeconds: 60 })).to.include({ ok: false, status: 422 });
  });

  it('reads durations from disk by random access when the file is larger than the head it was given', async () => {
    const wav = await probeMedia('audio/wav', source(wavOfDuration(3), 1024), none);
    expect((wav as unknown as { facts: { duration: number } }).facts.duration).to.equal(3);
    const mp4 = await probeMedia('video/mp4', source(mp4WithMoovAtEnd(7.25, 200_000), 1024), none);
    expect((mp4 as unknown as { facts: { duration: number } }).facts.duration).to.equal(7.25);
  });

  it('reads container, duration, codecs and audio format from the boxes of an MP4', async () => {
    const moov = box('moov', header('mvhd', 600, 6300), track(1, 'vide', H264, 90000, 945000), track(2, 'soun', aac(2, 44100), 44100, 463050));
    const file = Buffer.concat([FTYP, moov, box('mdat', randomBytes(4096))]);
    const expected = { container: 'isom/iso2/avc1/mp41', duration: 10.5, codec: 'H.264+AAC', sampleRate: 44100, channels: 2 };
    expect(await probeMedia('video/mp4', source(file), none)).to.deep.equal({ ok: true, facts: expected });
    // The same file read from disk by random access, its head alone in memory.
    expect(await probeMedia('video/mp4', source(file, 64), none)).to.deep.equal({ ok: true, facts: expected });
    // Zeros after the last box (padding some writers leave) end the walk; they are no broken box.
    expect(await probeMedia('video/mp4', source(Buffer.concat([file, Buffer.alloc(64)])), none)).to.deep.equal({ ok: true, facts: expected });
  });

  it('reads the channel count of AAC from its configuration, not the sample entry writers fill with 2', async () => {
    for (const [configured, channels] of [[1, 1], [2, 2], [6, 6], [7, 8]] as const) {
      const moov = box('moov', header('mvhd', 1000, 1000), track(1, 'soun', aac(2, 44100, configured), 44100, 44100));
      const probed = await probeMedia('audio/mp4', source(Buffer.concat([FTYP, moov])), none);
      expect(probed, `configuration ${configured}`).to.have.nested.property('facts.channels', channels);
    }
  });

  it('reads a 64-bit movie header, and the duration of a fragmented MP4 from its extends header or its runs', async () => {
    const v1 = full('mvhd', 1, 0, Buffer.alloc(16), u32(1000, 0, 3_600_500), Buffer.alloc(80));
    const long = await probeMedia('video/mp4', source(Buffer.concat([FTYP, box('mdat', Buffer.alloc(500)), box('moov', v1)]), 64), none);
    expect(long).to.deep.include({ ok: true }).and.to.have.nested.property('facts.duration', 3600.5);

    const audio = track(1, 'soun', aac(1, 48000), 48000, 0);
    const mehd = box('mvex', full('mehd', 0, 0, u32(2400)));
    const extended = await probeMedia('audio/mp4', source(Buffer.concat([FTYP, box('moov', header('mvhd', 1000, 0), mehd, audio)])), none);
    expect(extended).to.have.nested.property('facts.duration', 2.4);

    // Fragments: one run of 50 samples of the track's default duration, one with a duration per sample.
    const tfhd = full('tfhd', 0, 0x8, u32(1, 1024));
    const runOfDefaults = full('trun', 0, 0, u32(50));
    const runOfOwn = full('trun', 0, 0x300, u32(2, 2048, 100, 960, 100));
    const fragments = [box('moof', box('traf', tfhd, runOfDefaults)), box('mdat', Buffer.alloc(64)), box('moof', box('traf', tfhd, runOfOwn))];
    const fragmented = Buffer.concat([FTYP, box('moov', header('mvhd', 1000, 0), audio), ...fragments]);
    expect(await probeMedia('audio/mp4', source(fragmented, 64), none)).to.have.nested.property('facts.duration', Math.round(((50 * 1024 + 2048 + 960) / 48000) * 1000) / 1000);
    // A run claiming more samples than its box holds is read only as far as the box goes.
    const liar = Buffer.concat([FTYP, box('moov', header('mvhd', 1000, 0), audio), box('moof', box('traf', tfhd, full('trun', 0, 0x100, u32(0xffffffff, 480))))]);
    expect(await probeMedia('audio/mp4', source(liar), none)).to.have.nested.property('facts.duration', 0.01);
  });

  it('refuses an MP4 whose boxes break off or cannot be boxes', async () => {
    const cut = Buffer.concat([FTYP, box('moov', header('mvhd', 1000, 5000))]).subarray(0, 100);
    expect(await probeMedia('video/mp4', source(cut), none)).to.include({ ok: false, status: 415 });
    const garbage = Buffer.concat([FTYP, Buffer.from('00000010ffffffff', 'hex'), Buffer.alloc(8)]);
    expect(await probeMedia('video/quicktime', source(garbage), none)).to.include({ ok: false, status: 415 });
  });

  it('passes other types with no facts', async () => {
    expect(await probeMedia('text/plain; charset=utf-8', source(TEXT), none)).to.deep.equal({ ok: true, facts: {} });
  });
});
