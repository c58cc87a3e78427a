import fs from 'node:fs/promises';
import { makeDataDir } from './app-server.js';
import { spawnServer, type ServerProcess } from './process.js';
import { startRedis, type RedisServer } from './redis.js';

export interface Cluster {
  redis: RedisServer;
  dataDir: string;
  processes: ServerProcess[];
  urls: string[];
  env: Record<string, string>;
  /** Starts one more process on the same Redis and directory. */
  spawn(env?: Record<string, string>): Promise<ServerProcess>;
  stop(): Promise<void>;
}

/**
 * `count` tusgate processes (`npm start`, each its own port) on one real redis-server and one data
 * directory: several processes behind a load balancer, minus the balancer (tests pick the process).
 * Redis persists to an append-only file, so a test can stop and restart it at the same URL.
 */
export async function startCluster(count: number, env: Record<string, string> = {}): Promise<Cluster> {
  const redis = await startRedis({ appendOnly: true });
  const dataDir = await makeDataDir();
  const clusterEnv = { REDIS_URL: redis.url, DATA_DIR: dataDir, ...env };
  const processes = await Promise.all(Array.from({ length: count }, () => spawnServer(clusterEnv)));
  const cluster: Cluster = {
    redis,
    dataDir,
    processes,
    urls: processes.map((process) => process.url),
    env: clusterEnv,
    async spawn(env = {}) {
      const process = await spawnServer({ ...clusterEnv, ...env });
      cluster.processes.push(process);
      return process;
    },
    async stop() {
      await Promise.all(cluster.processes.map((process) => process.kill('SIGKILL')));
      await cluster.redis.stop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
  return cluster;
}
