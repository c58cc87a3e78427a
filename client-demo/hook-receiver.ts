// A tiny receiver of tusgate's event hooks: it verifies each delivery's signature, prints the
// event, and acknowledges it with 204. Run it beside tusgate:
//
//   HOOKS_SECRET=... npx tsx client-demo/hook-receiver.ts        # listens on 127.0.0.1:4000
//   HOOKS_URL=http://127.0.0.1:4000/ HOOKS_SECRET=... npm start
import http from 'node:http';
import { verifySignature } from '../server/hooks/signature.js';

const secret = process.env.HOOKS_SECRET;
if (!secret) {
  process.stderr.write('hook-receiver: set HOOKS_SECRET to the secret tusgate signs with\n');
  process.exit(1);
}
const port = Number(process.env.RECEIVER_PORT ?? 4000);
const seen = new Set<string>();

http
  .createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      if (!verifySignature(secret, req.headers['tusgate-signature'] as string | undefined, body)) {
        res.writeHead(401).end('bad signature');
        return;
      }
      const event = JSON.parse(body) as { id: string; type: string; data: Record<string, unknown> };
      // Deliveries are at least once: the event id makes handling idempotent.
      if (!seen.has(event.id)) {
        seen.add(event.id);
        process.stdout.write(`${event.type} ${JSON.stringify(event.data)}\n`);
      }
      res.writeHead(204).end();
    });
  })
  .listen(port, '127.0.0.1', () => process.stdout.write(`hook-receiver listening on http://127.0.0.1:${port}/\n`));
