import http from 'node:http'; import fs from 'node:fs';
const size = 1073741824;
function req(opts, body) { return new Promise((res, rej) => { const r = http.request({host:'127.0.0.1', port:18080, ...opts}, (resp) => { resp.resume(); resp.on('end', () => res(resp)); }); r.on('error', rej); if (body) body.pipe(r); else r.end(); }); }
for (let i = 0; i < 3; i++) {
  const c = await req({ method: 'POST', path: '/files', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': size } });
  const t = performance.now();
  const p = await req({ method: 'PATCH', path: new URL(c.headers.location).pathname, headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': 0, 'Content-Type': 'application/offset+octet-stream', 'Content-Length': size } }, fs.createReadStream('/tmp/bare/1g.bin', {highWaterMark: 1<<20}));
  console.log(p.statusCode, (size/1048576)/((performance.now()-t)/1000), 'MB/s');
}
