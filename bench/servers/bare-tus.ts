// Baseline: a bare @tus/server with @tus/file-store, nothing else (no auth, no hashing, no checks).
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';

const port = Number(process.env.PORT);
const server = new Server({ path: '/files', datastore: new FileStore({ directory: process.env.DATA_DIR! }) });
const http = server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
http.requestTimeout = 0;
