import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { expect } from 'chai';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { demoAssets } from '../client-demo/serve.js';
import { request } from './helpers/http.js';
import { startDevServer, type DevServer } from './helpers/dev-server.js';
import { signToken, startServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { freePort, REPO_ROOT, runServer, type RunningServer } from './helpers/spawn.js';
import { mp4OfSize } from './samples.js';

// The /demo/ page in Debian's Chromium, headless, driven by playwright-core: real uploads through
// Uppy's Dashboard. There is no browser download on this machine or in CI, so a missing Chromium
// fails these tests instead of skipping them (.ci/run installs it).

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Without the networking flags Chromium keeps trying hosts this closed network refuses.
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Screenshots for a person to look at (git-ignored). */
const ARTIFACTS = path.join(REPO_ROOT, 'test', 'artifacts');

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A real RGB PNG (a colour gradient), so the Dashboard can draw a thumbnail of it. */
function gradientPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])));
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = y * (width * 3 + 1) + 1 + x * 3;
      rows.set([(x * 255) / width, (y * 255) / height, 200], at);
    }
  }
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** UTF-8 text of exactly `size` bytes, different every time. */
function randomText(size: number): Buffer {
  // A fixed first line: random base64 may begin with a magic number ('MZ', 'BM'), and is no text/plain then.
  return Buffer.from(`random text\n${randomBytes(size).toString('base64').replace(/(.{76})/g, '$1\n')}`, 'utf8').subarray(0, size);
}

interface DemoPage {
  page: Page;
  context: BrowserContext;
  /** Console errors, uncaught exceptions and Content-Security-Policy violations seen so far. */
  problems: string[];
  /** Method and URL of every request to the tus endpoint. */
  tusRequests: string[];
}

describe('demo page (/demo/) in headless Chromium', function () {
  this.timeout(120_000);
  let browser: Browser;
  let dir: string;

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `Chromium was not found at ${CHROMIUM}. The browser tests need Debian's chromium package ` +
          '(apt-get install -y chromium; .ci/run installs it); they fail rather than skip without it.',
      );
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-demo-'));
    await fs.mkdir(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  async function openDemo(base: string, beforeLoad?: (page: Page) => Promise<void>): Promise<DemoPage> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await beforeLoad?.(page);
    const problems: string[] = [];
    const tusRequests: string[] = [];
    page.on('console', (message) => {
      // A refused upload is logged by the browser as a failed resource load; the tests check those on the page.
      if (message.type() === 'error' && !/status of (4\d\d)/.test(message.text())) problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
    page.on('request', (request) => {
      if (new URL(request.url()).pathname.startsWith('/files')) tusRequests.push(`${request.method()} ${request.url()}`);
    });
    await page.exposeFunction('reportCspViolation', (text: string) => problems.push(`CSP: ${text}`));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (event) => {
        (window as unknown as { reportCspViolation(text: string): void }).reportCspViolation(`${event.violatedDirective} ${event.blockedURI}`);
      });
    });
    page.on('response', (response) => {
      if (response.status() >= 500) problems.push(`HTTP ${response.status()} ${response.url()}`);
    });
    await page.goto(`${base}/demo/`);
    try {
      await page.waitForSelector('.uppy-Dashboard-input', { state: 'attached', timeout: 30_000 });
    } catch (error) {
      const shown = await page.textContent('#problem').catch(() => null);
      throw new Error(`the Dashboard did not appear (page says: ${shown ?? '-'}; problems: ${problems.join(' | ') || '-'}): ${(error as Error).message}`);
    }
    return { page, context, problems, tusRequests };
  }

  async function addFiles(page: Page, ...files: string[]): Promise<void> {
    // The Dashboard's first hidden input is its file picker ("browse files").
    await page.setInputFiles('.uppy-Dashboard-input >> nth=0', files);
  }

  async function startUpload(page: Page): Promise<void> {
    await page.click('.uppy-StatusBar-actionBtn--upload');
  }

  /** Waits until the upload itself (not the hashing before it) has reached `percent`. */
  async function uploadedPercent(page: Page, percent: number): Promise<void> {
    await page.waitForFunction((atLeast) => {
      const uploading = document.querySelector('.uppy-StatusBar-content[title="Uploading"]');
      return uploading && Number(document.querySelector('.uppy-StatusBar-progress')?.getAttribute('aria-valuenow')) >= atLeast;
    }, percent);
  }

  async function progress(page: Page): Promise<number> {
    return Number(await page.getAttribute('.uppy-StatusBar-progress', 'aria-valuenow'));
  }

  async function write(name: string, bytes: Buffer): Promise<string> {
    const file = path.join(dir, name);
    await fs.writeFile(file, bytes);
    return file;
  }

  /** Limits the page's upload bandwidth, so that an upload lasts long enough to interrupt. */
  async function throttle(page: Page, bytesPerSecond: number): Promise<void> {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond });
  }

  async function resultFor(page: Page, name: string) {
    const item = page.locator(`#results li[data-file="${name}"]`);
    await item.waitFor({ timeout: 60_000 });
    const failed = (await item.getAttribute('class'))!.includes('failed');
    return {
      className: await item.getAttribute('class'),
      link: failed ? null : await item.locator('.result-link').getAttribute('href'),
      sha256: failed ? null : await item.locator('.result-sha256').textContent(),
      text: await item.innerText(),
    };
  }

  /** Skips the page's retry delays (on a clock installed by the test) until the upload of `name` has failed. */
  async function fastForwardUntilFailed(page: Page, name: string): Promise<void> {
    const failed = page.locator(`#results li.failed[data-file="${name}"]`);
    for (let i = 0; i < 30 && (await failed.count()) === 0; i++) {
      await page.clock.fastForward(21_000);
      await page.waitForTimeout(200);
    }
  }

  /** The page's tus-js-client resume entries (upload URLs kept in localStorage under `tus::` keys). */
  async function resumeEntries(page: Page): Promise<string[]> {
    return page.evaluate(() => Object.keys(localStorage).filter((key) => key.startsWith('tus::')));
  }

  /** Waits a little for the page to drop its resume entries, then says which are left. */
  async function resumeEntriesLeft(page: Page): Promise<string[]> {
    const none = () => !Object.keys(localStorage).some((key) => key.startsWith('tus::'));
    await page.waitForFunction(none, null, { timeout: 5000 }).catch(() => undefined);
    return resumeEntries(page);
  }

  describe('in development mode', () => {
    let server: DevServer;
    before(async () => {
      server = await startDevServer({ MAX_FILE_SIZE: 3_000_000 });
      // Build the page now, so that a bundling error is reported as such (and not as a slow page).
      await demoAssets();
    });
    after(async () => server?.close());

    it('uploads files picked in the Dashboard and shows each link and the SHA-256 the server verified', async () => {
      const png = gradientPng(480, 320);
      const mp4 = mp4OfSize(900_000);
      const files = [await write('gradient.png', png), await write('clip.mp4', mp4)];
      const { page, context, problems } = await openDemo(server.url);

      expect(await page.textContent('#mode')).to.equal('development mode');
      expect(await page.isHidden('#auth')).to.equal(true);
      // The server's limits, fetched from it.
      expect(await page.textContent('#limits')).to.include('up to 2.9 MB (3,000,000 bytes) per file').and.include('image (jpeg, png, gif, webp)');

      await addFiles(page, ...files);
      await startUpload(page);
      for (const [name, bytes] of [['gradient.png', png], ['clip.mp4', mp4]] as const) {
        const result = await resultFor(page, name);
        expect(result.className, result.text).to.include('ok');
        expect(result.sha256).to.equal(sha256(bytes));
        expect(result.text).to.include('verified');
        expect(result.link).to.match(new RegExp(`^${server.url}/files/[0-9a-f]+$`));
        const served = await fetch(result.link!);
        expect(served.status).to.equal(200);
        expect(Buffer.from(await served.arrayBuffer()).equals(bytes), `bytes of ${name}`).to.equal(true);
      }
      await page.waitForSelector('.uppy-StatusBar.is-complete');
      await page.screenshot({ path: path.join(ARTIFACTS, 'demo.png'), fullPage: true });
      expect(problems).to.deep.equal([]);
      await context.close();
    });

    it('shows why a file is refused: too large before upload, wrong content in the server’s words', async () => {
      const first = await openDemo(server.url);
      // Over MAX_FILE_SIZE: refused by the page itself, with the limit the server reported. Picked with
      // a file that is taken, the refusal stays on the page, naming the file. That file's type is one
      // the browser names otherwise than the list (Chromium: audio/x-m4a for audio/mp4): let through.
      const m4a = Buffer.concat([Buffer.from('0000001c6674797049534f4d0000000049534f4d6d703431', 'hex'), Buffer.alloc(64)]);
      await first.page.setInputFiles('.uppy-Dashboard-input >> nth=0', [
        { name: 'huge.txt', mimeType: 'text/plain', buffer: randomText(3_100_000) },
        { name: 'voice.m4a', mimeType: 'audio/x-m4a', buffer: m4a },
      ]);
      await first.page.locator('.uppy-Dashboard-Item-name', { hasText: 'voice.m4a' }).waitFor({ timeout: 5000 });
      await first.page.waitForSelector('#problem:not([hidden])');
      const shown = await first.page.textContent('#problem');
      expect(shown).to.match(/huge\.txt: .*exceeds maximum allowed size of 2\.9 MB.*3,000,000 bytes/);
      expect(shown).not.to.include('voice.m4a');
      await first.context.close();

      const { page, context, problems } = await openDemo(server.url);
      // A text file named .png: the browser declares image/png, the server checks the bytes (415).
      await addFiles(page, await write('fake.png', randomText(4000)));
      await startUpload(page);
      const result = await resultFor(page, 'fake.png');
      expect(result.className).to.include('failed');
      expect(result.text).to.include('does not accept this kind of file').and.match(/The server said: “Unsupported Media Type: .*image\/png/);
      await page.screenshot({ path: path.join(ARTIFACTS, 'demo-refused.png'), fullPage: true });
      // Uppy logs the refusal it shows; anything else would be a fault of the page.
      expect(problems.filter((p) => !p.startsWith('console: [Uppy]'))).to.deep.equal([]);
      await context.close();
    });

    it('shows the server’s own 413 when an oversize file gets past the page’s check', async () => {
      // A page with a stale idea of the limit (here: the limit it was told is raised on the way).
      const { page, context } = await openDemo(server.url, async (p) => {
        await p.route('**/demo/config', async (route) => {
          const original = await route.fetch();
          const config = (await original.json()) as { maxFileSize: number };
          await route.fulfill({ response: original, json: { ...config, maxFileSize: config.maxFileSize * 10 } });
        });
      });
      await addFiles(page, await write('huge.txt', randomText(3_100_000)));
      await startUpload(page);
      const result = await resultFor(page, 'huge.txt');
      expect(result.className).to.include('failed');
      expect(result.text).to.include('larger than the server accepts').and.match(/The server said: “.*(exceed|[Mm]aximum)/);
      await context.close();
    });

    it('pauses and resumes an upload without starting it again', async () => {
      const bytes = randomText(2_000_000);
      const { page, context, problems, tusRequests } = await openDemo(server.url);
      await throttle(page, 400_000);
      await addFiles(page, await write('paused.txt', bytes));
      await startUpload(page);
      await uploadedPercent(page, 15);
      await page.click('button[data-cy="togglePauseResume"]');
      await page.waitForSelector('.uppy-StatusBar-content[title="Paused"]');
      // The aborted request's last progress event may still arrive; after that nothing moves.
      await page.waitForTimeout(500);
      const paused = await progress(page);
      await page.waitForTimeout(1500);
      expect(await progress(page)).to.equal(paused);
      await page.click('button[data-cy="togglePauseResume"]');

      const result = await resultFor(page, 'paused.txt');
      expect(result.sha256).to.equal(sha256(bytes));
      expect(Buffer.from(await (await fetch(result.link!)).arrayBuffer()).equals(bytes)).to.equal(true);
      // One upload, continued: a single creation, then a HEAD for the offset after the pause.
      expect(tusRequests.filter((r) => r.startsWith('POST'))).to.have.length(1);
      expect(tusRequests.some((r) => r.startsWith('HEAD'))).to.equal(true);
      expect(problems).to.deep.equal([]);
      await context.close();
    });

    it('shows the hash-mismatch message (460) when the declared SHA-256 is not the file’s', async () => {
      const bytes = randomText(200_000);
      const { page, context, problems } = await openDemo(server.url);
      // The page sends the SHA-256 it computed as metadata `sha256`; on the way, replace it with a wrong one.
      const wrong = 'ab'.repeat(32);
      const declared: string[] = [];
      await page.route(
        (url) => url.pathname === '/files/',
        async (route) => {
          const request = route.request();
          if (request.method() !== 'POST') return route.continue();
          const headers = await request.allHeaders();
          const pairs = (headers['upload-metadata'] ?? '').split(',').map((pair) => pair.split(' '));
          declared.push(...pairs.filter(([key]) => key === 'sha256').map(([, value]) => Buffer.from(value ?? '', 'base64').toString()));
          const metadata = pairs.map(([key, value]) => (key === 'sha256' ? `sha256 ${Buffer.from(wrong).toString('base64')}` : `${key} ${value}`));
          await route.continue({ headers: { ...headers, 'upload-metadata': metadata.join(',') } });
        },
      );
      await addFiles(page, await write('tampered.txt', bytes));
      await startUpload(page);
      const result = await resultFor(page, 'tampered.txt');
      // The page did declare the right digest; only the rewritten one reached the server.
      expect(declared).to.deep.equal([sha256(bytes)]);
      expect(result.className, result.text).to.include('failed');
      expect(result.text)
        .to.include('The bytes the server received do not match the file\'s SHA-256, so the upload was discarded.')
        .and.match(/The server said: “Checksum Mismatch: the file's SHA-256 does not match the declared sha256”/);
      expect(await resumeEntriesLeft(page), 'resume entries of the discarded upload').to.deep.equal([]);
      expect(problems.filter((p) => !p.startsWith('console: [Uppy]'))).to.deep.equal([]);
      await context.close();
    });

    it('forgets the resume point of an upload refused at completion (415), and keeps one a retry can use (503)', async () => {
      // Refused by the content check of the final PATCH: the server removed the upload.
      const refused = await openDemo(server.url);
      await addFiles(refused.page, await write('not-a.png', randomText(4000)));
      await startUpload(refused.page);
      expect((await resultFor(refused.page, 'not-a.png')).className).to.include('failed');
      expect(await resumeEntriesLeft(refused.page), 'resume entries of the removed upload').to.deep.equal([]);
      await refused.context.close();

      // Every PATCH answered 503 until the retries run out: the upload is still there to resume.
      const { page, context } = await openDemo(server.url, (p) => p.clock.install());
      await page.route(
        (url) => url.pathname.startsWith('/files/'),
        (route) => (route.request().method() === 'PATCH' ? route.fulfill({ status: 503, body: 'Service Unavailable' }) : route.continue()),
      );
      await addFiles(page, await write('later.txt', randomText(4000)));
      await startUpload(page);
      await fastForwardUntilFailed(page, 'later.txt');
      expect((await resultFor(page, 'later.txt')).text).to.include('HTTP 503');
      expect(await resumeEntries(page)).to.have.length(1);
      await context.close();
    });
  });

  describe('with FILES_PUBLIC=false', () => {
    let server: DevServer;
    before(async () => {
      server = await startDevServer({ FILES_PUBLIC: false });
    });
    after(async () => server?.close());

    it('fetches a finished file with the token when its link is clicked, and saves it under its name', async () => {
      const png = gradientPng(64, 48);
      const { page, context, problems } = await openDemo(server.url);
      await addFiles(page, await write('private.png', png));
      await startUpload(page);
      const result = await resultFor(page, 'private.png');
      expect(result.className, result.text).to.include('ok');
      // The link itself, opened without the token, is refused.
      expect((await fetch(result.link!)).status).to.equal(404);

      const download = page.waitForEvent('download', { timeout: 10_000 });
      await page.click('#results li[data-file="private.png"] .result-link');
      const saved = await download;
      expect(saved.suggestedFilename()).to.equal('private.png');
      expect((await fs.readFile((await saved.path())!)).equals(png)).to.equal(true);
      expect(await page.isHidden('#problem')).to.equal(true);
      expect(problems).to.deep.equal([]);
      await context.close();
    });
  });

  describe('with at most one incomplete upload per user', () => {
    let server: DevServer;
    before(async () => {
      server = await startDevServer({ MAX_ACTIVE_UPLOADS_PER_USER: 1 });
    });
    after(async () => server?.close());

    it('shows the too-many-uploads message (429) while another upload of the same user is incomplete', async () => {
      // The demo user's first upload, created and left incomplete. (Two files added together in the
      // page would not show it: Uppy answers a 429 by queueing the second file behind the first.)
      const b64 = (text: string) => Buffer.from(text).toString('base64');
      const held = await fetch(`${server.url}/files/`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${server.devToken}`,
          'Tus-Resumable': '1.0.0',
          'Upload-Length': '1000',
          'Upload-Metadata': `filename ${b64('held.txt')},filetype ${b64('text/plain')}`,
        },
      });
      expect(held.status).to.equal(201);

      // Uppy retries a 429 with the page's backoff (0 + 1 + 3 + 5 + 10 + 20 s); a controllable clock
      // lets the test skip those pauses instead of waiting them out.
      const { page, context, problems } = await openDemo(server.url, (page) => page.clock.install());
      const refused = page.waitForResponse((response) => response.request().method() === 'POST' && response.status() === 429);
      await addFiles(page, await write('second.txt', randomText(50_000)));
      await startUpload(page);
      expect(await (await refused).text()).to.include('too many incomplete uploads');

      await fastForwardUntilFailed(page, 'second.txt');
      const result = await resultFor(page, 'second.txt');
      expect(result.className, result.text).to.include('failed');
      expect(result.text)
        .to.include('Too many uploads at once or in the last hour.')
        .and.include('The server said: “Too Many Requests: too many incomplete uploads; finish or delete one first”');
      expect(problems.filter((p) => !p.startsWith('console: [Uppy]'))).to.deep.equal([]);
      await context.close();
    });
  });

  describe('with a configured key (a token is pasted)', () => {
    let dataDir: string;
    let port: number;
    let server: RunningServer | undefined;
    const start = async () => {
      server = runServer({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'warn' });
      await server.waitForStdout(/tusgate listening/);
    };
    before(async () => {
      dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-demo-data-'));
      port = await freePort();
      await start();
    });
    after(async () => {
      await server?.stop('SIGKILL').catch(() => undefined);
      await fs.rm(dataDir, { recursive: true, force: true });
    });

    it('asks for a token, and an upload cut off by a server crash continues when the server is back', async () => {
      const base = `http://127.0.0.1:${port}`;
      const bytes = randomText(3_000_000);
      const { page, context, problems, tusRequests } = await openDemo(base);
      expect(await page.textContent('#mode')).to.equal('token required');
      await page.fill('#token', await signToken('browser-user'));
      await page.click('#auth button');

      await throttle(page, 400_000);
      await addFiles(page, await write('crash.txt', bytes));
      await startUpload(page);
      await uploadedPercent(page, 20);
      await server!.stop('SIGKILL');
      // While the server is away the page says it is retrying, instead of a progress bar that stalls.
      await page.waitForSelector('.uppy-Informer :text("Connection to the server lost: retrying")', { timeout: 15_000 });
      await start();

      const result = await resultFor(page, 'crash.txt');
      expect(result.className, result.text).to.include('ok');
      expect(result.sha256).to.equal(sha256(bytes));
      expect(Buffer.from(await (await fetch(result.link!)).arrayBuffer()).equals(bytes)).to.equal(true);
      // The same upload went on from the stored offset: created once, asked for its offset after the crash.
      expect(tusRequests.filter((r) => r.startsWith('POST'))).to.have.length(1);
      expect(tusRequests.some((r) => r.startsWith('HEAD'))).to.equal(true);
      await page.screenshot({ path: path.join(ARTIFACTS, 'demo-resumed.png'), fullPage: true });
      // The dropped connection is the only error the browser may report.
      expect(problems.filter((p) => !p.includes('net::ERR_'))).to.deep.equal([]);
      await context.close();
    });

    it('refuses to start with a token that has expired, keeping the upload it would resume', async () => {
      const base = `http://127.0.0.1:${port}`;
      const { page, context, tusRequests } = await openDemo(base);
      await page.fill('#token', await signToken('browser-user', {}, TEST_SECRET, Math.floor(Date.now() / 1000) - 60));
      await page.click('#auth button');
      await addFiles(page, await write('late.txt', randomText(10_000)));
      await startUpload(page);
      await page.waitForSelector('#problem:not([hidden])');
      expect(await page.textContent('#problem')).to.include('Your token has expired. Paste a fresh one');
      // Nothing was sent: a refused resume would have made the client drop the upload's stored place.
      expect(tusRequests).to.deep.equal([]);
      await context.close();
    });

    it('says in plain words that a wrong pasted token was refused (401)', async () => {
      const base = `http://127.0.0.1:${port}`;
      const { page, context, problems } = await openDemo(base);
      // Well-formed, but signed with another key.
      await page.fill('#token', await signToken('browser-user', {}, 'not-the-server-secret-0123456789abcdef'));
      await page.click('#auth button');
      await addFiles(page, await write('unauthorized.txt', randomText(10_000)));
      await startUpload(page);
      const result = await resultFor(page, 'unauthorized.txt');
      expect(result.className, result.text).to.include('failed');
      expect(result.text).to.include('The server did not accept your token: it may have expired. Paste a fresh one and retry.');
      expect(result.text).to.include('The server said: “Unauthorized: invalid or expired token”');
      expect(problems.filter((p) => !p.startsWith('console: [Uppy]'))).to.deep.equal([]);
      await context.close();
    });
  });
});

describe('demo page (/demo/): how tusgate serves it', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ MAX_FILE_SIZE: 12_345_678, ALLOWED_MIME_TYPES: ['video/*', 'image/png'] });
  });
  after(async () => server?.close());

  it('serves the page, its bundle and its worker with a same-origin Content-Security-Policy', async () => {
    for (const [asset, type] of [['', 'text/html'], ['app.js', 'text/javascript'], ['app.css', 'text/css'], ['hash-worker.js', 'text/javascript']]) {
      const response = await fetch(`${server.url}/demo/${asset}`);
      expect(response.status, asset).to.equal(200);
      expect(response.headers.get('content-type')).to.include(type);
      const csp = response.headers.get('content-security-policy')!;
      expect(csp).to.include("default-src 'self'").and.include("script-src 'self' 'wasm-unsafe-eval'").and.include("frame-ancestors 'none'");
      expect(csp).to.not.match(/https?:|'unsafe-inline'|'unsafe-eval'/);
    }
    const moved = await fetch(`${server.url}/demo`, { redirect: 'manual' });
    expect(moved.status).to.equal(301);
    expect(moved.headers.get('location')).to.equal('/demo/');
    expect((await fetch(`${server.url}/demo/nothing.js`)).status).to.equal(404);
  });

  it('lets a reload revalidate the bundle (ETag, then 304)', async () => {
    const first = await fetch(`${server.url}/demo/app.js`);
    const etag = first.headers.get('etag');
    expect(etag).to.match(/^"[\w-]+"$/);
    // Not fetch: it sends Cache-Control: no-cache with a conditional header of its caller's.
    const again = await request(`${server.url}/demo/app.js`, { headers: { 'If-None-Match': etag! } });
    expect(again.status).to.equal(304);
  });

  it('tells the page the server’s own limits, that files are public, and that a token must be pasted when a key is configured', async () => {
    const response = await fetch(`${server.url}/demo/config`);
    expect(await response.json()).to.deep.equal({
      endpoint: '/files/',
      maxFileSize: 12_345_678,
      allowedTypes: ['video/*', 'image/png'],
      acceptedTypes: ['video/*', 'image/png'],
      devMode: false,
      filesPublic: true,
    });
    expect((await fetch(`${server.url}/demo/token`)).status).to.equal(404);
  });
});
