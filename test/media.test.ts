import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { MEDIA_HEAD_BYTES, probeMedia, type MediaLimits } from '../server/uploads/media.js';
import { JPEG, MP4, mp4WithMoovAtEnd, pngOfSize, TEXT, wavOfDuration } from './samples.js';

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

  it('passes other types with no facts', async () => {
    expect(await probeMedia('text/plain; charset=utf-8', source(TEXT), none)).to.deep.equal({ ok: true, facts: {} });
  });
});
