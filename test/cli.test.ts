import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { startDevServer, type DevServer } from './helpers/dev-server.js';
import { startServer, type TestServer } from './helpers/server.js';
import { startSlowProxy } from './helpers/slow-proxy.js';
import { freePort, REPO_ROOT } from './helpers/spawn.js';
import { waitFor } from './helpers/wait.js';

// The command-line uploader (client-demo/upload.ts) run as a real child process against tusgate.

interface Run {
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  pid: number;
}

/**
 * `node --import tsx client-demo/upload.ts ARGS` (or `npm run upload -- ARGS` with `viaNpm`), from the
 * repository, or with `cwd` from another directory (npm is then told where the repository is).
 */
function runCli(args: string[], options: { viaNpm?: boolean; home: string; cwd?: string }): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: options.home };
  delete env.TUSGATE_TOKEN;
  delete env.TUSGATE_ENDPOINT;
  delete env.TUSGATE_STATE;
  const child = options.viaNpm
    ? spawn('npm', ['--prefix', REPO_ROOT, 'run', '-s', 'upload', '--', ...args], { cwd: options.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, ['--import', 'tsx', 'client-demo/upload.ts', ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  return { stdout: () => out, stderr: () => err, exited, pid: child.pid! };
}

/** Text (tusgate checks text types by content: UTF-8, no NUL bytes) of about `size` bytes, different every time. */
function randomText(size: number): Buffer {
  // A fixed first line: random base64 may begin with a magic number ('MZ', 'BM'), and is no text/plain then.
  return Buffer.from(`random text\n${randomBytes(Math.ceil((size * 3) / 4)).toString('base64').replace(/(.{76})/g, '$1\n')}\n`, 'utf8').subarray(0, size);
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** How long a test waits for a CLI run (a Node process of its own) to get somewhere. */
const CLI_WAIT_MS = 20_000;

/** `URL  sha256:HEX  FILE`, the line printed on stdout for each verified file. */
function parseResult(stdout: string): { url: string; sha256: string } {
  const match = /^(http\S+) {2}sha256:([0-9a-f]{64}) {2}/m.exec(stdout);
  expect(match, `no result line in stdout: ${stdout}`).to.not.equal(null);
  return { url: match![1]!, sha256: match![2]! };
}

describe('command-line uploader (npm run upload)', function () {
  this.timeout(90_000);
  let server: TestServer;
  let token: string;
  let dir: string;

  before(async () => {
    server = await startServer();
    token = await server.token('cli-user');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-cli-'));
  });
  after(async () => {
    await server?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  const endpoint = () => `${server.url}/files/`;
  const state = () => path.join(dir, 'state.json');

  it('uploads a file, prints its URL and SHA-256, and the server serves the exact bytes', async () => {
    const bytes = randomText(300_000);
    const file = path.join(dir, 'notes.txt');
    await fs.writeFile(file, bytes);

    const run = runCli([file, '--endpoint', endpoint(), '--token', token, '--state', state()], { viaNpm: true, home: dir });
    const { code } = await run.exited;
    expect(code, run.stderr()).to.equal(0);
    const result = parseResult(run.stdout());
    expect(result.sha256).to.equal(sha256(bytes));
    expect(run.stderr()).to.match(/\[#+\] 100\.0%/).and.to.include('SHA-256 verified by the server');

    const served = await fetch(result.url);
    expect(served.status).to.equal(200);
    expect(Buffer.from(await served.arrayBuffer()).equals(bytes)).to.equal(true);
    expect(served.headers.get('repr-digest')).to.equal(`sha-256=:${Buffer.from(result.sha256, 'hex').toString('base64')}:`);
    // A finished upload is forgotten, so the same command later makes a new upload.
    expect(JSON.parse(await fs.readFile(state(), 'utf8'))).to.deep.equal({});
  });

  it('takes a relative FILE (and --state) from the directory npm was run in, not the repository', async () => {
    const bytes = randomText(20_000);
    const here = await fs.mkdtemp(path.join(dir, 'here-'));
    await fs.writeFile(path.join(here, 'relative.txt'), bytes);

    const run = runCli(['relative.txt', '--endpoint', endpoint(), '--token', token, '--state', 'state.json'], { viaNpm: true, home: dir, cwd: here });
    const { code } = await run.exited;
    expect(code, run.stderr()).to.equal(0);
    expect(parseResult(run.stdout()).sha256).to.equal(sha256(bytes));
    expect(JSON.parse(await fs.readFile(path.join(here, 'state.json'), 'utf8'))).to.deep.equal({});
  });

  it('fails with exit code 1 and the server’s reason when it refuses the file (415)', async () => {
    const file = path.join(dir, 'not-really.png');
    await fs.writeFile(file, randomText(5000));
    const run = runCli([file, '--endpoint', endpoint(), '--token', token, '--state', state()], { home: dir });
    const { code } = await run.exited;
    expect(code).to.equal(1);
    expect(run.stdout()).to.equal('');
    expect(run.stderr()).to.match(/not-really\.png: FAILED: the server does not accept this type of file.*HTTP 415: ".*image\/png/);
  });

  it('fails clearly on a bad token (401) and on an unreachable server', async () => {
    const file = path.join(dir, 'small.txt');
    await fs.writeFile(file, randomText(1000));
    const refused = runCli([file, '--endpoint', endpoint(), '--token', 'not-a-jwt', '--state', state()], { home: dir });
    expect((await refused.exited).code).to.equal(1);
    expect(refused.stderr()).to.match(/refused the token.*HTTP 401/);

    const closed = `http://127.0.0.1:${await freePort()}/files/`;
    const unreachable = runCli([file, '--endpoint', closed, '--token', token, '--state', state(), '--retries', '0'], { home: dir });
    expect((await unreachable.exited).code).to.equal(1);
    expect(unreachable.stderr()).to.match(/could not reach .*ECONNREFUSED/);
  });

  it('resumes from the server’s offset after being killed mid-upload, and the result is the exact file', async () => {
    const bytes = randomText(24 * 1024 * 1024);
    const file = path.join(dir, 'big.txt');
    await fs.writeFile(file, bytes);
    const args = [file, '--endpoint', endpoint(), '--token', token, '--state', state(), '--chunk-size', '64k'];

    const first = runCli(args, { home: dir });
    const url = await waitFor(() => /created (http\S+)/.exec(first.stderr())?.[1], CLI_WAIT_MS, `the upload's creation\n${first.stderr()}`);
    // Kill it for real (no chance to clean up) once the server has some of the bytes.
    await waitFor(async () => {
      const head = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` } });
      return Number(head.headers.get('upload-offset')) > 0 || undefined;
    }, CLI_WAIT_MS, 'the first bytes to arrive');
    process.kill(first.pid, 'SIGKILL');
    expect((await first.exited).signal).to.equal('SIGKILL');

    const second = runCli(args, { home: dir });
    const { code } = await second.exited;
    expect(code, second.stderr()).to.equal(0);
    const resumed = /resuming (\S+) from byte (\d+) of (\d+)/.exec(second.stderr());
    expect(resumed, second.stderr()).to.not.equal(null);
    expect(resumed![1]).to.equal(url);
    expect(Number(resumed![2])).to.be.greaterThan(0).and.lessThan(bytes.length);
    expect(second.stderr()).to.not.include('created');

    const result = parseResult(second.stdout());
    expect(result.url).to.equal(url);
    expect(result.sha256).to.equal(sha256(bytes));
    const served = Buffer.from(await (await fetch(url)).arrayBuffer());
    expect(served.length).to.equal(bytes.length);
    expect(served.equals(bytes)).to.equal(true);
  });

  it('starts over, rather than resume, when the file was rewritten with other bytes of the same size and time', async () => {
    const before = randomText(8 * 1024 * 1024);
    const file = path.join(dir, 'rewritten.txt');
    await fs.writeFile(file, before);
    const { mtime } = await fs.stat(file);
    // A state file of its own: the killed run's entry stays in it (it names the old bytes).
    const args = [file, '--endpoint', endpoint(), '--token', token, '--state', path.join(dir, 'rewritten-state.json'), '--chunk-size', '64k'];
    const first = runCli(args, { home: dir });
    const url = await waitFor(() => /created (http\S+)/.exec(first.stderr())?.[1], CLI_WAIT_MS, `the upload's creation\n${first.stderr()}`);
    process.kill(first.pid, 'SIGKILL');
    await first.exited;

    const after = randomText(before.length);
    await fs.writeFile(file, after);
    await fs.utimes(file, mtime, mtime);
    const second = runCli(args, { home: dir });
    const { code } = await second.exited;
    expect(code, second.stderr()).to.equal(0);
    expect(second.stderr()).to.not.include('resuming');
    const result = parseResult(second.stdout());
    expect(result.url).to.not.equal(url);
    expect(result.sha256).to.equal(sha256(after));
  });

  it('exits 2 (a usage error) for an --endpoint that is not an http(s) URL', async () => {
    for (const endpointArg of ['notaurl', 'ftp://127.0.0.1/files/']) {
      const run = runCli(['x.txt', '--endpoint', endpointArg, '--token', token, '--state', state()], { home: dir });
      expect((await run.exited).code, endpointArg).to.equal(2);
      expect(run.stderr()).to.include('--endpoint');
    }
  });

  it('on Ctrl-C (SIGINT) stops, says how to continue, exits 130, and the next run continues', async () => {
    const bytes = randomText(16 * 1024 * 1024);
    const file = path.join(dir, 'interrupted.txt');
    await fs.writeFile(file, bytes);
    // Over a slow network (20 ms a request, 256 PATCHes): the progress line comes once a second when
    // stderr is no terminal, and on a fast machine the upload was over before it.
    const proxy = await startSlowProxy(server.url, 20);
    try {
      const args = [file, '--endpoint', `${proxy.url}/files/`, '--token', token, '--state', state(), '--chunk-size', '64k'];

      const first = runCli(args, { home: dir });
      await waitFor(() => (/\] +\d+\.\d% [1-9]/.test(first.stderr()) ? true : undefined), CLI_WAIT_MS, `progress\n${first.stderr()}`);
      process.kill(first.pid, 'SIGINT');
      expect((await first.exited).code, first.stderr()).to.equal(130);
      expect(first.stderr()).to.include('run the same command again');

      // A run with a bad token fails, and does not make the next run forget the upload.
      const badToken = runCli(args.map((arg) => (arg === token ? 'not-a-jwt' : arg)), { home: dir });
      expect((await badToken.exited).code).to.equal(1);
      expect(Object.keys(JSON.parse(await fs.readFile(state(), 'utf8')))).to.have.length(1);

      const second = runCli(args, { home: dir });
      expect((await second.exited).code, second.stderr()).to.equal(0);
      expect(second.stderr()).to.match(/resuming \S+ from byte [1-9]\d* of/);
      const served = Buffer.from(await (await fetch(parseResult(second.stdout()).url)).arrayBuffer());
      expect(served.equals(bytes)).to.equal(true);
    } finally {
      await proxy.close();
    }
  });
});

describe('command-line uploader in development mode', function () {
  this.timeout(60_000);
  let server: DevServer;
  let dir: string;
  before(async () => {
    server = await startDevServer();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-cli-'));
  });
  after(async () => {
    await server?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('takes its token from /demo/token when none is given, and keeps its state under $HOME by default', async () => {
    const bytes = randomText(2000);
    const file = path.join(dir, 'hello.txt');
    await fs.writeFile(file, bytes);
    const run = runCli([file, '--endpoint', `${server.url}/files/`], { home: dir });
    expect((await run.exited).code, run.stderr()).to.equal(0);
    expect(parseResult(run.stdout()).sha256).to.equal(sha256(bytes));
    await fs.access(path.join(dir, '.tusgate', 'uploads.json'));
  });
});

describe('command-line uploader, --legacy (the /api/v1 chunked-upload API)', function () {
  this.timeout(90_000);
  let server: TestServer;
  let token: string;
  let dir: string;

  before(async () => {
    server = await startServer();
    token = await server.token('legacy-cli-user');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-cli-legacy-'));
  });
  after(async () => {
    await server?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  const state = () => path.join(dir, 'state', 'uploads.json');
  const sessionsFile = () => path.join(dir, 'state', 'legacy-sessions.json');
  const legacyArgs = (file: string, ...more: string[]) => ['--legacy', file, '--endpoint', server.url, '--token', token, '--state', state(), ...more];
  const status = async (id: string) => {
    const response = await fetch(`${server.url}/api/v1/upload/${id}/status`, { headers: { Authorization: `Bearer ${token}` } });
    expect(response.status).to.equal(200);
    return (await response.json()) as { status: string; uploaded_chunks: number[]; remaining_chunks: number[] };
  };

  it('uploads in chunks, completes, and file_url serves the exact bytes with the file’s Repr-Digest', async () => {
    const bytes = randomText(2_500_000);
    const file = path.join(dir, 'legacy notes.txt');
    await fs.writeFile(file, bytes);

    const run = runCli(legacyArgs(file), { viaNpm: true, home: dir });
    const { code } = await run.exited;
    expect(code, run.stderr()).to.equal(0);
    // 2.5 MB in the default 1 MiB chunks.
    expect(run.stderr()).to.match(/initiated session [0-9a-f-]{36} \(3 chunks of 1\.0 MiB\)/);
    expect(run.stderr()).to.match(/\[#+\] 100\.0%/).and.to.include('SHA-256 verified by the server');
    const result = parseResult(run.stdout());
    expect(result.url).to.match(new RegExp(`^${server.url}/api/v1/files/[0-9a-f-]{36}_legacy%20notes\\.txt$`));
    expect(result.sha256).to.equal(sha256(bytes));

    const served = await fetch(result.url, { headers: { Authorization: `Bearer ${token}` } });
    expect(served.status).to.equal(200);
    expect(Buffer.from(await served.arrayBuffer()).equals(bytes)).to.equal(true);
    expect(served.headers.get('repr-digest')).to.equal(`sha-256=:${Buffer.from(sha256(bytes), 'hex').toString('base64')}:`);
    const id = /\/files\/([0-9a-f-]{36})_/.exec(result.url)![1]!;
    expect((await status(id)).status).to.equal('completed');
    // A finished upload is forgotten.
    expect(JSON.parse(await fs.readFile(sessionsFile(), 'utf8'))).to.deep.equal({});
  });

  it('resumes its session after being killed mid-upload, sending only the missing chunks', async () => {
    const bytes = randomText(6 * 1024 * 1024);
    const file = path.join(dir, 'big-legacy.txt');
    await fs.writeFile(file, bytes);
    const args = legacyArgs(file, '--chunk-size', '32k');
    const total = (6 * 1024 * 1024) / (32 * 1024);

    const first = runCli(args, { home: dir });
    const id = await waitFor(() => /initiated session (\S+)/.exec(first.stderr())?.[1], CLI_WAIT_MS, `the session\n${first.stderr()}`);
    await waitFor(async () => ((await status(id)).uploaded_chunks.length > 0 ? true : undefined), CLI_WAIT_MS, 'the first chunks to arrive');
    process.kill(first.pid, 'SIGKILL');
    expect((await first.exited).signal).to.equal('SIGKILL');
    const between = await status(id);
    expect(between.status).to.equal('in_progress');
    expect(between.uploaded_chunks.length).to.be.greaterThan(0).and.lessThan(total);
    expect(Object.values(JSON.parse(await fs.readFile(sessionsFile(), 'utf8'))).map((s) => (s as { session_id: string }).session_id)).to.deep.equal([id]);

    const second = runCli(args, { home: dir });
    const { code } = await second.exited;
    expect(code, second.stderr()).to.equal(0);
    const resumed = /resuming session (\S+): (\d+) of (\d+) chunks already on the server/.exec(second.stderr());
    expect(resumed, second.stderr()).to.not.equal(null);
    expect(resumed![1]).to.equal(id);
    expect(Number(resumed![3])).to.equal(total);
    const already = Number(resumed![2]);
    expect(already).to.be.at.least(between.uploaded_chunks.length);
    const sent = Number(/sending (\d+) of \d+ chunks/.exec(second.stderr())![1]);
    expect(sent).to.equal(total - already).and.to.be.lessThan(total);
    expect(second.stderr()).to.not.include('initiated session');

    const result = parseResult(second.stdout());
    expect(result.url).to.include(`/api/v1/files/${id}_big-legacy.txt`);
    expect(result.sha256).to.equal(sha256(bytes));
    const served = Buffer.from(await (await fetch(result.url, { headers: { Authorization: `Bearer ${token}` } })).arrayBuffer());
    expect(served.length).to.equal(bytes.length);
    expect(served.equals(bytes)).to.equal(true);
    expect((await status(id)).status).to.equal('completed');
    expect(JSON.parse(await fs.readFile(sessionsFile(), 'utf8'))).to.deep.equal({});
  });

  it('exits 1 with the server’s message when the server refuses the upload (400)', async () => {
    const file = path.join(dir, 'page.txt');
    await fs.writeFile(file, randomText(5000));
    const run = runCli(legacyArgs(file, '--type', 'text/html'), { home: dir });
    const { code } = await run.exited;
    expect(code).to.equal(1);
    expect(run.stdout()).to.equal('');
    expect(run.stderr()).to.match(/page\.txt: FAILED: the server refused the upload \(HTTP 400: "MIME type text\/html is not allowed"\)/);
  });
});
