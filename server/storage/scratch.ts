import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A directory `name` in this process's own scratch space, `<DATA_DIR>/tmp/<host>-<pid>/` (processes
 * may share a DATA_DIR). What dead processes of this host left there is removed.
 */
export async function scratchDirectory(dataDir: string, name: string): Promise<string> {
  const root = path.resolve(dataDir, 'tmp');
  const host = os.hostname();
  await fs.mkdir(root, { recursive: true });
  for (const name of await fs.readdir(root)) {
    const pid = name.startsWith(`${host}-`) ? Number(name.slice(host.length + 1)) : NaN;
    if (Number.isInteger(pid) && !alive(pid)) await fs.rm(path.join(root, name), { recursive: true, force: true });
  }
  const own = path.join(root, `${host}-${process.pid}`, name);
  await fs.mkdir(own, { recursive: true });
  return own;
}
