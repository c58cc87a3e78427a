// Ceiling: the least a tus-shaped server can do. POST names a file, PATCH pipes the body into it at
// the given offset, HEAD reports the size. No locks, no checks, no metadata.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

const port = Number(process.env.PORT);
const dir = process.env.DATA_DIR!;

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'POST') {
      const id = randomBytes(16).toString('hex');
      fs.writeFileSync(path.join(dir, id), '');
      res.writeHead(201, { Location: `http://${req.headers.host}/files/${id}`, 'Tus-Resumable': '1.0.0' }).end();
      return;
    }
    const id = path.basename(req.url ?? '');
    const file = path.join(dir, id);
    if (req.method === 'PATCH') {
      const offset = Number(req.headers['upload-offset']);
      await pipeline(req, fs.createWriteStream(file, { flags: 'r+', start: offset }));
      res.writeHead(204, { 'Upload-Offset': String(fs.statSync(file).size), 'Tus-Resumable': '1.0.0' }).end();
      return;
    }
    res.writeHead(200, { 'Upload-Offset': String(fs.statSync(file).size) }).end();
  } catch {
    res.writeHead(500).end();
  }
});
server.requestTimeout = 0;
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
