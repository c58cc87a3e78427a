import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { probeMedia, type MediaLimits } from '../server/uploads/media.js';
import { JPEG, MP4, pngOfSize, TEXT, wavOfDuration } from './samples.js';

function source(data: Buffer) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tusgate-media-')), 'f');
  fs.writeFileSync(file, data);
  return {
    path: file,
    size: data.length,
    readRange: (start: number, end: number) => fs.createReadStream(file, { start, end: end - 1 }),
  };
}

const none: MediaLimits = { maxImagePixels: 100_000_000 };

describe('media probing', () => {
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

  it('passes other types with no facts', async () => {
    expect(await probeMedia('text/plain; charset=utf-8', source(TEXT), none)).to.deep.equal({ ok: true, facts: {} });
  });
});
