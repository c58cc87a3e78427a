import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';
const s = new Server({ path: '/files', datastore: new FileStore({ directory: '/tmp/bare/data' }) });
s.listen(18080, '127.0.0.1');
