import { expect } from 'chai';
import { request, tus } from './helpers/http.js';
import { startServer, type TestServer } from './helpers/server.js';
import { legacyClient } from './legacy-client.js';
import { gifWithFrame, jpegAfterMetadata, MP4, mp4WithMoovAtEnd, pngOfSize, wavOfDuration } from './samples.js';

describe('media limits at completion', () => {
  let server: TestServer;
  let client: ReturnType<typeof tus>;
  before(async () => {
    server = await startServer({ MAX_MEDIA_DURATION_SECONDS: 2, MIN_MEDIA_DURATION_SECONDS: 1, MAX_IMAGE_PIXELS: 1000 });
    client = tus(server.url, await server.token('alice'));
  });
  after(() => server.close());

  async function upload(data: Buffer, filetype: string) {
    const location = (await client.create(data.length, { filetype })).headers.location!;
    return { location, res: await client.patch(location, 0, data) };
  }

  it('accepts media within the limits and stores its facts', async () => {
    const audio = await upload(wavOfDuration(1.5), 'audio/wav');
    expect(audio.res.status).to.equal(204);
    const info = JSON.parse((await request(`${audio.location}/info`)).text);
    expect(info.media).to.include({ duration: 1.5, container: 'WAVE' });
    const image = await upload(pngOfSize(20, 20), 'image/png');
    expect(image.res.status).to.equal(204);
    expect(JSON.parse((await request(`${image.location}/info`)).text).media).to.deep.equal({ width: 20, height: 20 });
  });

  it('refuses too long, too short and too many pixels with 422, removing the upload', async () => {
    for (const [data, type, pattern] of [
      [wavOfDuration(3), 'audio/wav', /longer than the limit of 2 s/],
      [wavOfDuration(0.5), 'audio/wav', /shorter than the minimum of 1 s/],
      [pngOfSize(100, 100), 'image/png', /100×100 pixels/],
    ] as const) {
      const { location, res } = await upload(data, type);
      expect(res.status, type).to.equal(422);
      expect(res.text).to.match(pattern);
      expect((await client.head(location)).status).to.equal(404);
      expect((await request(location)).status).to.equal(404);
    }
    const metrics = (await request(`${server.url}/metrics`)).text;
    expect(metrics).to.match(/tusgate_uploads_failed_total\{reason="media"\} 3/);
  });

  it('counts a GIF at the size of its largest frame, not the smaller screen its header gives', async () => {
    const fits = await upload(gifWithFrame([30, 30], [20, 20]), 'image/gif');
    expect(fits.res.status, fits.res.text).to.equal(204);
    expect(JSON.parse((await request(`${fits.location}/info`)).text).media).to.deep.equal({ width: 30, height: 30 });
    const bomb = await upload(gifWithFrame([10, 10], [40, 40]), 'image/gif');
    expect(bomb.res.status).to.equal(422);
    expect(bomb.res.text).to.match(/40×40 pixels/);
  });

  it('measures a JPEG whose frame header comes after more metadata than the head it reads', async () => {
    const small = await upload(jpegAfterMetadata(25, 20, 600 * 1024), 'image/jpeg');
    expect(small.res.status, small.res.text).to.equal(204);
    expect(JSON.parse((await request(`${small.location}/info`)).text).media).to.deep.equal({ width: 25, height: 20 });
    const large = await upload(jpegAfterMetadata(100, 100, 600 * 1024), 'image/jpeg');
    expect(large.res.status).to.equal(422);
    expect(large.res.text).to.match(/100×100 pixels/);
  });

  it('reads the duration of a video-only MP4 whose moov box comes after its media data', async () => {
    const short = await upload(mp4WithMoovAtEnd(1.5), 'video/mp4');
    expect(short.res.status, short.res.text).to.equal(204);
    expect(JSON.parse((await request(`${short.location}/info`)).text).media).to.include({ duration: 1.5 });
    const long = await upload(mp4WithMoovAtEnd(12.5), 'video/mp4');
    expect(long.res.status).to.equal(422);
    expect(long.res.text).to.match(/12.5 s, longer than the limit of 2 s/);
  });

  it('refuses a file declared as video/mp4 that does not parse as one', async () => {
    const broken = Buffer.concat([MP4.subarray(0, 32), Buffer.from('00000010ffffffff', 'hex'), Buffer.alloc(64, 1)]);
    const { res } = await upload(broken, 'video/mp4');
    expect(res.status).to.equal(415);
  });

  it('applies the same limits to the legacy facade', async () => {
    const legacy = legacyClient(server.url, await server.token('bob'));
    const data = wavOfDuration(3);
    const initiated = await legacy.initiate({ filename: 'long.wav', file_size: data.length, chunk_size: data.length, mime_type: 'audio/wav' });
    expect(initiated.status).to.equal(200);
    const session = initiated.json.session_id as string;
    expect((await legacy.chunk(session, 0, data)).status).to.equal(200);
    const completed = await legacy.complete(session);
    expect(completed.status).to.equal(422);
    expect(completed.json.detail).to.match(/longer than the limit/);
    expect((await legacy.status(session)).json.status).to.equal('failed');
  });
});
