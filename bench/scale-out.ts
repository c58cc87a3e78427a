// Scale-out benchmark: tusgate as one process on local state, one process on Redis, two processes on
// one Redis and one directory, and the same on S3 (a local Ceph radosgw): one process, then two on
// Redis. With two processes the driver alternates uploads between them. Setups alternate in order
// over several rounds. Reports medians to bench/results-scale-out.md.
//
//   npm run bench:scale-out              full run
//   npm run bench:scale-out -- --quick   small sizes
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryLocker } from '@tus/server';
import type { Locker } from '@tus/utils';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { RedisLocker } from '../server/storage/redis-locker.js';
import { startRadosgw, type Radosgw } from '../test/helpers/ceph.js';
import { startRedis, type RedisServer } from '../test/helpers/redis.js';
import { create, patch, pool, upload, type Target } from './driver.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const QUICK = process.argv.includes('--quick');
const ROUNDS = QUICK ? 1 : 3;
const MiB = 1024 * 1024;
const SECRET = `bench-${Date.now()}-secret-not-for-production`;

const SETUPS = [
  'one process',
  'one process, Redis',
  'two processes, Redis',
  'S3: one process',
  'S3: one process, Redis',
  'S3: two processes, Redis',
] as const;
type Setup = (typeof SETUPS)[number];

interface Running {
  children: ChildProcess[];
  targets: Target[];
  dataDir: string;
  /** S3 setups get a radosgw of their own: it frees deleted objects only hours later (its GC). */
  rgw?: Radosgw;
}

let port = 19_700 + Math.floor(Math.random() * 200);

async function spawnTusgate(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const listen = port++;
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(listen),
      HOST: '127.0.0.1',
      JWT_SECRET: SECRET,
      LOG_LEVEL: 'warn',
      MAX_FILE_SIZE: String(2 * 1024 * MiB),
      MAX_ACTIVE_UPLOADS_PER_USER: '100000',
      UPLOADS_PER_HOUR_PER_USER: '1000000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => /listening/.test(chunk.toString()) && resolve());
    child.once('exit', (code) => reject(new Error(`tusgate exited with ${code}`)));
  });
  return { child, url: `http://127.0.0.1:${listen}` };
}

async function start(setup: Setup, redis: RedisServer): Promise<Running> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-bench-scale-'));
  const env: Record<string, string> = { DATA_DIR: dataDir };
  if (setup.includes('Redis')) env.REDIS_URL = redis.url;
  const rgw = setup.startsWith('S3') ? await startRadosgw(60_000, 2 * 1024 * MiB) : undefined;
  if (rgw) {
    Object.assign(env, {
      STORAGE: 's3',
      S3_BUCKET: rgw.bucket,
      S3_ENDPOINT: rgw.endpoint,
      S3_ACCESS_KEY_ID: rgw.accessKeyId,
      S3_SECRET_ACCESS_KEY: rgw.secretAccessKey,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    });
  }
  const count = setup.includes('two processes') ? 2 : 1;
  const started = await Promise.all(Array.from({ length: count }, () => spawnTusgate(env)));
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('bench').setExpirationTime('2h').sign(Buffer.from(SECRET));
  return { children: started.map((s) => s.child), targets: started.map((s) => ({ url: s.url, token })), dataDir, rgw };
}

async function stop(running: Running): Promise<void> {
  await Promise.all(
    running.children.map((child) => new Promise((resolve) => (child.once('exit', resolve), child.kill('SIGKILL')))),
  );
  await running.rgw?.stop();
  await fs.rm(running.dataDir, { recursive: true, force: true });
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const median = (values: number[]) => percentile(values, 50);

interface Result {
  mbPerSecond?: number;
  p50?: number;
  p99?: number;
}

const SCENARIOS: Array<{ name: string; run(targets: Target[]): Promise<Result> }> = [
  {
    name: `16 × ${QUICK ? 8 : 64} MiB concurrent`,
    async run(targets) {
      const size = (QUICK ? 8 : 64) * MiB;
      const started = performance.now();
      // Uploads alternate between processes; each upload stays on its process.
      await pool(16, 16, (index) => upload(targets[index % targets.length]!, size, 8 * MiB));
      return { mbPerSecond: (16 * size) / MiB / ((performance.now() - started) / 1000) };
    },
  },
  {
    name: `PATCH latency: ${QUICK ? 100 : 200} × 64 KiB PATCHes in turn, one upload`,
    async run(targets) {
      const count = QUICK ? 100 : 200;
      const chunk = 64 * 1024;
      const size = count * chunk;
      const location = await create(targets[0]!, size);
      const latencies: number[] = [];
      for (let index = 0; index < count; index++) {
        // With two processes, consecutive PATCHes go to different processes (the lock and the
        // running hash move between them).
        const target = targets[index % targets.length]!;
        const url = new URL(new URL(location).pathname, target.url).toString();
        const started = performance.now();
        await patch(target, url, index * chunk, (index + 1) * chunk, size);
        latencies.push(performance.now() - started);
      }
      return { p50: median(latencies), p99: percentile(latencies, 99) };
    },
  },
];

/**
 * What the lock alone adds to a request: lock + unlock of one upload, in turn, through @tus/server's
 * MemoryLocker and through tusgate's RedisLocker on the local redis-server. Median and p99 in ms.
 */
async function lockCost(redis: RedisServer): Promise<Array<{ locker: string; p50: number; p99: number }>> {
  const client = new Redis(redis.url);
  const locker = new RedisLocker(client, () => client.duplicate());
  const count = QUICK ? 500 : 3000;
  const measure = async (name: string, lockers: Locker) => {
    const times: number[] = [];
    for (let index = 0; index < count; index++) {
      const started = performance.now();
      const lock = lockers.newLock(`bench-${index % 16}`);
      await lock.lock(new AbortController().signal, () => undefined);
      await lock.unlock();
      times.push(performance.now() - started);
    }
    return { locker: name, p50: median(times), p99: percentile(times, 99) };
  };
  try {
    return [await measure('MemoryLocker', new MemoryLocker()), await measure('RedisLocker', locker)];
  } finally {
    await locker.close();
    client.disconnect();
  }
}

async function main() {
  const redis = await startRedis();
  const results = new Map<string, Map<Setup, Result[]>>();
  let locks: Awaited<ReturnType<typeof lockCost>> = [];
  try {
    locks = await lockCost(redis);
    for (const scenario of SCENARIOS) {
      const bySetup = new Map<Setup, Result[]>(SETUPS.map((setup) => [setup, []]));
      results.set(scenario.name, bySetup);
      for (let round = 0; round < ROUNDS; round++) {
        for (const setup of round % 2 === 0 ? SETUPS : [...SETUPS].reverse()) {
          const running = await start(setup, redis);
          try {
            const result = await scenario.run(running.targets);
            bySetup.get(setup)!.push(result);
            process.stdout.write(`${scenario.name} | ${setup} | round ${round + 1}: ${JSON.stringify(result)}\n`);
          } finally {
            await stop(running);
          }
        }
      }
    }
  } finally {
    await redis.stop();
  }
  const fmt = (value: number | undefined, digits = 1) => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits));
  const med = (list: Result[], key: keyof Result) => {
    const values = list.map((r) => r[key]).filter((v): v is number => typeof v === 'number');
    return values.length ? median(values) : undefined;
  };
  const lines = [
    `# tusgate scale-out benchmark${QUICK ? ' (quick)' : ''}`,
    '',
    `${new Date().toISOString()} · ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length} · Node ${process.version}`,
    '',
    `Medians of ${ROUNDS} rounds, setups alternating. File storage in one directory; "Redis" runs with REDIS_URL (locks, records, quotas, sessions and tus metadata in a local redis-server); "S3" is a local Ceph radosgw (one memstore OSD) on the same 2 cores.`,
    '',
    '| scenario | setup | MB/s | p50 ms | p99 ms | vs one process (same storage) |',
    '|---|---|---|---|---|---|',
  ];
  for (const [scenario, bySetup] of results) {
    for (const [setup, list] of bySetup) {
      const base = bySetup.get(setup.startsWith('S3') ? 'S3: one process' : 'one process')!;
      const versus = med(list, 'mbPerSecond') !== undefined
        ? `${fmt(med(list, 'mbPerSecond')! / med(base, 'mbPerSecond')!, 2)} ×`
        : `${fmt(med(list, 'p50')! - med(base, 'p50')!, 2)} ms p50`;
      lines.push(`| ${scenario} | ${setup} | ${fmt(med(list, 'mbPerSecond'))} | ${fmt(med(list, 'p50'), 2)} | ${fmt(med(list, 'p99'), 2)} | ${versus} |`);
    }
  }
  lines.push('', 'Lock and unlock of one upload, in turn (what the lock adds to every request):', '', '| locker | p50 ms | p99 ms |', '|---|---|---|');
  for (const { locker, p50, p99 } of locks) lines.push(`| ${locker} | ${fmt(p50, 3)} | ${fmt(p99, 3)} |`);
  const report = `${lines.join('\n')}\n`;
  await fs.writeFile(path.join(ROOT, 'bench', QUICK ? 'results-scale-out-quick.md' : 'results-scale-out.md'), report);
  process.stdout.write(report);
}

main().catch((error) => {
  process.stderr.write(`${(error as Error).stack}\n`);
  process.exit(1);
});
