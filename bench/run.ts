// tusgate's benchmark: the same scenarios against tusgate (auth and SHA-256 on), a bare @tus/server
// with @tus/file-store, and a pipe-to-disk ceiling, alternating servers in every round, on one
// machine. Reports medians and ratios in bench/results.md.
//
//   npm run bench              full run (a few minutes)
//   npm run bench -- --quick   small sizes, for a smoke check
//   npm run bench -- --tsx     run the servers from their TypeScript sources under tsx (as `npm
//                              start` does) instead of as bundles on plain Node (as in production)
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { buildServer } from '../scripts/build.js';
import { legacyUpload, pool, upload, type Target } from './driver.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const QUICK = process.argv.includes('--quick');
const TSX = process.argv.includes('--tsx');
const ROUNDS = QUICK ? 1 : 3;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SECRET = `bench-${Date.now()}-secret-not-for-production`;

/** `hooks` is tusgate with event hooks on, delivering to a receiver that takes 200 ms to answer. */
type ServerName = 'tusgate' | 'hooks' | 'bare' | 'ceiling';
const SERVERS: ServerName[] = ['tusgate', 'bare', 'ceiling'];
const HOOK_RECEIVER_DELAY_MS = 200;
let hookReceiverUrl = '';
let hookDeliveries = 0;

/** A hook receiver in this process that acknowledges each event after HOOK_RECEIVER_DELAY_MS. */
async function startHookReceiver(): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hookDeliveries++;
      setTimeout(() => res.writeHead(204).end(), HOOK_RECEIVER_DELAY_MS);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hookReceiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return server;
}
const ONLY = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);

interface Running {
  name: ServerName;
  child: ChildProcess;
  target: Target;
  dataDir: string;
}

const SOURCES: Record<ServerName, string> = {
  tusgate: 'server/main.ts',
  hooks: 'server/main.ts',
  bare: 'bench/servers/bare-tus.ts',
  ceiling: 'bench/servers/pipe-to-disk.ts',
};
/** Every server is bundled the same way (scripts/build.ts), so that none pays for a loader. */
const bundles = new Map<string, Promise<string>>();
function bundleOf(source: string): Promise<string> {
  let built = bundles.get(source);
  if (!built) {
    built = buildServer(path.join(ROOT, 'bench', 'out', `${path.basename(source, '.ts')}.mjs`), source);
    bundles.set(source, built);
  }
  return built;
}

async function startServer(name: ServerName, port: number): Promise<Running> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `tusgate-bench-${name}-`));
  const script = SOURCES[name];
  const hooks = name === 'hooks' ? { HOOKS_URL: hookReceiverUrl, HOOKS_SECRET: SECRET } : {};
  const args = TSX ? ['--import', 'tsx', script] : [await bundleOf(script)];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      JWT_SECRET: SECRET,
      LOG_LEVEL: 'warn',
      MAX_FILE_SIZE: String(4 * GiB),
      MAX_CHUNK_SIZE: String(16 * MiB),
      MAX_ACTIVE_UPLOADS_PER_USER: '100000',
      UPLOADS_PER_HOUR_PER_USER: '1000000',
      ...hooks,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => /listening/.test(chunk.toString()) && resolve());
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
  });
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('bench').setExpirationTime('2h').sign(Buffer.from(SECRET));
  return { name, child, dataDir, target: { url: `http://127.0.0.1:${port}`, token } };
}

async function stopServer(server: Running): Promise<void> {
  server.child.kill('SIGKILL');
  await new Promise((resolve) => server.child.once('exit', resolve));
  await fs.rm(server.dataDir, { recursive: true, force: true });
}

/** CPU time the process has used so far (all its threads), in seconds. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name: utime and stime are the 12th and 13th, in clock ticks.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * Samples the server's resident memory while `work` runs, and counts the CPU time it used: on a
 * machine shared with other jobs the CPU a server spends on the same work varies less than its
 * throughput.
 */
async function withServerLoad<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peakRssMiB: number; cpuSeconds: number }> {
  let peak = 0;
  const sample = async () => {
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    peak = Math.max(peak, kb / 1024);
  };
  const cpuBefore = await cpuSeconds(pid);
  const timer = setInterval(() => void sample(), 50);
  try {
    const result = await work();
    await sample();
    return { result, peakRssMiB: peak, cpuSeconds: (await cpuSeconds(pid)) - cpuBefore };
  } finally {
    clearInterval(timer);
  }
}

interface Measurement {
  mbPerSecond?: number;
  uploadsPerSecond?: number;
  p50?: number;
  p99?: number;
  finalPatchMs?: number;
  peakRssMiB: number;
  /** CPU time the server used for the scenario. */
  cpuSeconds: number;
}

interface Scenario {
  name: string;
  /** The servers to compare (default: tusgate, bare, ceiling). */
  servers?: ServerName[];
  run(target: Target, server: ServerName): Promise<Omit<Measurement, 'peakRssMiB' | 'cpuSeconds'>>;
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const median = (values: number[]) => percentile(values, 50);

function throughput(bytes: number, ms: number) {
  return bytes / MiB / (ms / 1000);
}

const big = QUICK ? 64 * MiB : GiB;

/**
 * The legacy facade's chunks, 4 in flight. The baselines have no legacy API: they carry the same
 * bytes in tus PATCHes of the same size, 4 uploads at a time.
 */
function legacyScenario(chunk: number): Scenario {
  const size = (QUICK ? 16 : 128) * MiB;
  return {
    name: `legacy ${chunk / MiB} MiB chunks × 4 in parallel, ${size / MiB} MiB`,
    async run(target, server) {
      const started = performance.now();
      const latencies =
        server === 'tusgate'
          ? await legacyUpload(target, size, chunk, 4)
          : (await pool(4, 4, () => upload(target, size / 4, chunk))).flat();
      return { mbPerSecond: throughput(size, performance.now() - started), p50: median(latencies), p99: percentile(latencies, 99) };
    },
  };
}
const SCENARIOS: Scenario[] = [
  {
    name: `1 × ${big / MiB} MiB, one PATCH`,
    async run(target) {
      const started = performance.now();
      const [latency] = await upload(target, big);
      return { mbPerSecond: throughput(big, performance.now() - started), finalPatchMs: latency };
    },
  },
  {
    name: `1 × ${big / MiB} MiB in 5 MiB PATCHes`,
    async run(target) {
      const started = performance.now();
      const latencies = await upload(target, big, 5 * MiB);
      return {
        mbPerSecond: throughput(big, performance.now() - started),
        p50: median(latencies),
        p99: percentile(latencies, 99),
        finalPatchMs: latencies.at(-1),
      };
    },
  },
  {
    name: `16 × ${QUICK ? 8 : 64} MiB concurrent`,
    async run(target) {
      const size = (QUICK ? 8 : 64) * MiB;
      const started = performance.now();
      const latencies = (await pool(16, 16, () => upload(target, size))).flat();
      return { mbPerSecond: throughput(16 * size, performance.now() - started), p50: median(latencies), p99: percentile(latencies, 99) };
    },
  },
  {
    name: `100 × ${QUICK ? 2 : 8} MiB concurrent (memory)`,
    async run(target) {
      const size = (QUICK ? 2 : 8) * MiB;
      const started = performance.now();
      await pool(100, 100, () => upload(target, size, 1 * MiB));
      return { mbPerSecond: throughput(100 * size, performance.now() - started) };
    },
  },
  {
    name: `${QUICK ? 300 : 2000} × 10 KiB, concurrency 32`,
    async run(target) {
      const count = QUICK ? 300 : 2000;
      const started = performance.now();
      const latencies = await pool(count, 32, async () => {
        const t = performance.now();
        await upload(target, 10 * 1024);
        return performance.now() - t;
      });
      return { uploadsPerSecond: count / ((performance.now() - started) / 1000), p50: median(latencies), p99: percentile(latencies, 99) };
    },
  },
  legacyScenario(1 * MiB),
  legacyScenario(10 * MiB),
  {
    name: `hooks on: 16 × ${QUICK ? 8 : 64} MiB concurrent`,
    servers: ['tusgate', 'hooks'],
    async run(target) {
      const size = (QUICK ? 8 : 64) * MiB;
      const started = performance.now();
      await pool(16, 16, () => upload(target, size));
      return { mbPerSecond: throughput(16 * size, performance.now() - started) };
    },
  },
  {
    name: `hooks on: ${QUICK ? 300 : 2000} × 10 KiB, concurrency 32`,
    servers: ['tusgate', 'hooks'],
    async run(target) {
      const count = QUICK ? 300 : 2000;
      const started = performance.now();
      await pool(count, 32, () => upload(target, 10 * 1024));
      return { uploadsPerSecond: count / ((performance.now() - started) / 1000) };
    },
  },
];

async function main() {
  const receiver = await startHookReceiver();
  const results = new Map<string, Map<ServerName, Measurement[]>>();
  let port = 19_100 + Math.floor(Math.random() * 500);
  for (const scenario of SCENARIOS.filter((s) => !ONLY || s.name.includes(ONLY))) {
    const servers = scenario.servers ?? SERVERS;
    const byServer = new Map<ServerName, Measurement[]>(servers.map((s) => [s, []]));
    results.set(scenario.name, byServer);
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate the order each round so drift in the machine's load spreads over all servers.
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const name of order) {
        const server = await startServer(name, port++);
        try {
          const { result, ...load } = await withServerLoad(server.child.pid!, () => scenario.run(server.target, name));
          byServer.get(name)!.push({ ...result, ...load });
          process.stdout.write(`${scenario.name} | ${name} | round ${round + 1}: ${JSON.stringify({ ...result, ...load })}\n`);
        } finally {
          await stopServer(server);
        }
      }
    }
  }
  receiver.close();
  process.stdout.write(`hook deliveries received: ${hookDeliveries}\n`);
  const out = ONLY ? `results-${ONLY.replace(/[^a-z0-9]+/gi, '-')}.md` : QUICK ? 'results-quick.md' : TSX ? 'results-tsx.md' : 'results.md';
  await fs.writeFile(path.join(ROOT, 'bench', out), report(results) + (await notesOf(path.join(ROOT, 'bench', out))));
  process.stdout.write(report(results));
}

/** The notes written under a results file's table ("## Notes …" to the end), kept when the table is replaced. */
async function notesOf(file: string): Promise<string> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const at = text.search(/^## Notes/m);
  return at < 0 ? '' : `\n${text.slice(at)}`;
}

function report(results: Map<string, Map<ServerName, Measurement[]>>): string {
  const fmt = (value: number | undefined, digits = 1) => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits));
  const med = (list: Measurement[], key: keyof Measurement) => {
    const values = list.map((m) => m[key]).filter((v): v is number => typeof v === 'number');
    return values.length ? median(values) : undefined;
  };
  const lines = [
    `# tusgate benchmark${QUICK ? ' (quick)' : ''}`,
    '',
    `${new Date().toISOString()} · ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length} · ${(os.totalmem() / GiB).toFixed(0)} GiB · Node ${process.version} · ${os.platform()} ${os.release()}`,
    '',
    `Medians of ${ROUNDS} rounds; servers alternate within each round. tusgate runs with JWT auth and SHA-256 on; "bare" is @tus/server + @tus/file-store; "ceiling" pipes request bodies to disk. ${TSX ? 'Servers run from their TypeScript sources under tsx.' : 'Servers run as esbuild bundles (scripts/build.ts) on plain Node.'}`,
    '',
    'The last column compares the CPU time (all threads) each server spent on the same work: on a shared machine it varies less than throughput.',
    '',
    '| scenario | server | MB/s | uploads/s | p50 ms | p99 ms | final PATCH ms | peak RSS MiB | server CPU s | tusgate/bare | tusgate/ceiling | CPU tusgate/bare |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [scenario, byServer] of results) {
    const rate = (name: ServerName) => med(byServer.get(name)!, 'mbPerSecond') ?? med(byServer.get(name)!, 'uploadsPerSecond');
    const cpuRatio = (name: ServerName) =>
      name === 'tusgate' && byServer.has('bare') ? fmt(med(byServer.get('tusgate')!, 'cpuSeconds')! / med(byServer.get('bare')!, 'cpuSeconds')!, 2) : '';
    for (const [name, list] of byServer) {
      const ratio = (other: ServerName) => {
        if (name === 'hooks' && other === 'bare') return `hooks/tusgate ${fmt(rate('hooks')! / rate('tusgate')!, 2)}`;
        return name === 'tusgate' && byServer.has(other) ? fmt(rate('tusgate')! / rate(other)!, 2) : '';
      };
      lines.push(
        `| ${scenario} | ${name} | ${fmt(med(list, 'mbPerSecond'))} | ${fmt(med(list, 'uploadsPerSecond'))} | ${fmt(med(list, 'p50'))} | ${fmt(med(list, 'p99'))} | ${fmt(med(list, 'finalPatchMs'))} | ${fmt(med(list, 'peakRssMiB'), 0)} | ${fmt(med(list, 'cpuSeconds'), 2)} | ${ratio('bare')} | ${ratio('ceiling')} | ${cpuRatio(name)} |`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack}\n`);
  process.exit(1);
});
