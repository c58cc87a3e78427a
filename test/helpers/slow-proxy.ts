import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlowProxy {
  url: string;
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of `target` that holds each request `delayMs` before passing it on: a slow
 * network, so that a test can stop a client in the middle of an upload however fast the machine is.
 * Headers go through as they are (the server builds its Location URLs from Host, so they point at the
 * proxy), and a client that goes away takes its request to the server with it.
 */
export async function startSlowProxy(target: string, delayMs: number): Promise<SlowProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    req.pause();
    let forward: http.ClientRequest | undefined;
    const timer = setTimeout(() => {
      forward = http.request(
        { hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
          answer.pipe(res);
        },
      );
      forward.on('error', () => res.destroy());
      req.pipe(forward);
    }, delayMs);
    res.on('close', () => {
      clearTimeout(timer);
      if (!res.writableFinished) forward?.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
