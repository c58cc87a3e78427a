import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './process.js';

export interface Radosgw {
  /** `http://127.0.0.1:PORT`, for an S3 client with `forcePathStyle: true` (no DNS-style buckets here). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** A bucket created for the caller, empty. */
  bucket: string;
  /** ceph-mon, ceph-osd and radosgw, in start order. */
  pids: number[];
  stop(): Promise<void>;
}

/** Debian 12's packages (see .ci/run); `ceph` is the CLI from ceph-common, which they pull in. */
const BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph'];
const INSTALL_HINT = 'apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd';

function which(name: string): string | undefined {
  const onPath = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return onPath;
  return existsSync(`/usr/bin/${name}`) ? `/usr/bin/${name}` : undefined;
}

/** Whether every Ceph binary startRadosgw needs is installed. */
export function findCeph(): boolean {
  return BINARIES.every((name) => which(name) !== undefined);
}

export const MISSING_CEPH = `Ceph is not installed (${INSTALL_HINT}); the S3 tests need a real radosgw`;

/**
 * The smallest cluster radosgw runs on: one monitor, one OSD keeping its objects in memory, size-1
 * pools, everything on 127.0.0.1 and under `dir`. Why the less obvious lines are there:
 * - `auth_* = none` needs the `ms_*_mode` lines too: the default "secure" mode asks for cephx keys,
 *   and radosgw then loops on an authentication error.
 * - paxos intervals: each pool radosgw creates costs a few osdmap epochs, one per second by default;
 *   that alone made start-up take ~12 s instead of ~5 s.
 * - `mon_data_avail_*`: the monitor warns below 30% free disk and shuts down below 5%, which a busy
 *   CI disk can reach; this cluster keeps nothing worth protecting.
 * - `rgw_thread_pool_size`: the default 512 threads are not needed for tests.
 */
function cephConf(dir: string, fsid: string, monPort: number, rgwPort: number, memstoreBytes: number): string {
  return `[global]
fsid = ${fsid}
mon_host = v2:127.0.0.1:${monPort}
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_msgr2 = true
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_cluster_mode = crc
ms_service_mode = crc
ms_client_mode = crc
ms_mon_cluster_mode = crc
ms_mon_service_mode = crc
ms_mon_client_mode = crc
keyring = /dev/null
run_dir = ${dir}/run
admin_socket = ${dir}/run/$name.asok
log_file = ${dir}/$name.log
client_mount_timeout = 30
rados_mon_op_timeout = 30
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 1
mon_data_avail_crit = 0
paxos_propose_interval = 0.01
paxos_min_wait = 0.01

[mon]
mon_data = ${dir}/mon

[osd]
osd_data = ${dir}/osd
osd_objectstore = memstore
memstore_device_bytes = ${memstoreBytes}

[client.rgw]
rgw_data = ${dir}/rgw
rgw_frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw_thread_pool_size = 32
`;
}

/** Runs a short Ceph command to its end; rejects with its output if it fails or takes too long. */
function run(command: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * Sends SIGTERM to a daemon by its PID and waits until it has exited, with SIGKILL after a second:
 * radosgw takes ~5 s to finish on SIGTERM, and nothing in this cluster is worth the wait.
 */
async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid!, 'SIGTERM');
  const killer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  }, 1_000);
  await exited;
  clearTimeout(killer);
}

/**
 * Starts a throw-away Ceph cluster with radosgw on free loopback ports, in a fresh temporary
 * directory, plus an S3 user and an empty bucket. Takes ~5 s and ~0.2 GB of memory before data
 * (the OSD keeps objects in memory). Every daemon runs in the foreground as our child, so `stop()`
 * ends exactly those PIDs and removes the directory; they are also killed if this process exits
 * first. Fails with one clear line if the binaries are missing (CI installs them; see .ci/run).
 */
/** `memstoreBytes`: the OSD keeps objects in memory, up to this much (the benchmark needs more). */
export async function startRadosgw(timeoutMs = 60_000, memstoreBytes = 1024 * 1024 * 1024): Promise<Radosgw> {
  if (!findCeph()) throw new Error(MISSING_CEPH);
  const started = Date.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tusgate-ceph-'));
  for (const sub of ['run', 'mon', 'osd', 'rgw']) mkdirSync(path.join(dir, sub));
  const conf = path.join(dir, 'ceph.conf');
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  const fsid = randomUUID();
  writeFileSync(conf, cephConf(dir, fsid, monPort, rgwPort, memstoreBytes));

  const daemons: ChildProcess[] = [];
  const killAll = () => {
    for (const child of daemons) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  const daemon = (command: string, args: string[]) => {
    // Their logs go to files under `dir`; stderr only repeats the errors.
    const child = spawn(command, ['-f', '-c', conf, ...args], { stdio: 'ignore' });
    daemons.push(child);
    return child;
  };
  const stop = async () => {
    // radosgw first, then the OSD, then the monitor, so none of them waits for a peer that is gone.
    for (const child of [...daemons].reverse()) await stopDaemon(child);
    process.removeListener('exit', killAll);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await run('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, path.join(dir, 'monmap')]);
    await run('ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', path.join(dir, 'monmap')]);
    daemon('ceph-mon', ['-i', 'a']);
    const osdUuid = randomUUID();
    const osdId = (await run('ceph', ['-c', conf, 'osd', 'new', osdUuid])).trim();
    await run('ceph-osd', ['-c', conf, '-i', osdId, '--mkfs', '--osd-uuid', osdUuid]);
    daemon('ceph-osd', ['-i', osdId]);
    // radosgw waits for the OSD by itself, then creates its pools and only then listens.
    daemon('radosgw', ['-n', 'client.rgw']);
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    while (!(await answers(endpoint))) {
      const dead = daemons.find((child) => child.exitCode !== null || child.signalCode !== null);
      if (dead) throw new Error(`${dead.spawnfile} exited early`);
      if (Date.now() - started > timeoutMs) throw new Error(`radosgw did not answer within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const accessKeyId = randomBytes(10).toString('hex').toUpperCase();
    const secretAccessKey = randomBytes(20).toString('hex');
    await run('radosgw-admin', ['-c', conf, 'user', 'create', '--uid', 'tusgate', '--display-name', 'tusgate',
      '--access-key', accessKeyId, '--secret', secretAccessKey]);
    const bucket = 'tusgate-test';
    const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    } finally {
      client.destroy();
    }
    return { endpoint, accessKeyId, secretAccessKey, bucket, pids: daemons.map((child) => child.pid!), stop };
  } catch (error) {
    const logs = ['mon.a', 'osd.0', 'client.rgw'].map((name) => `--- ${name}.log\n${tail(path.join(dir, `${name}.log`))}`).join('\n');
    await stop();
    throw new Error(`could not start radosgw: ${(error as Error).message}\n${logs}`);
  }
}
