// A tiny static file server. Booted with `virtiofs-ts boot --entry /main.js`
// its modules and the files it serves come through the virtio-fs driver
// (globalThis.virtiofs); run with plain `node main.js` it uses the local disk.
// Serves ./public; PORT (default 8080, 0 = any) and HOST from the environment.
import { createServer } from 'node:http';
import { contentType } from './lib/mime.js';
import config from './config.json' with { type: 'json' };

const vfs = globalThis.virtiofs;
const { stat, createReadStream } = vfs
  ? { stat: (p) => vfs.stat(p), createReadStream: (p, o) => vfs.createReadStream(p, o) }
  : { stat: (await import('node:fs/promises')).stat, createReadStream: (await import('node:fs')).createReadStream };
const base = vfs ? '/public' : new URL('./public', import.meta.url).pathname;

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  let path = decodeURIComponent(url.pathname);
  if (path.endsWith('/')) path += config.index;
  if (path.split('/').includes('..')) {
    res.writeHead(400).end('bad path\n');
    return;
  }
  try {
    const st = await stat(base + path);
    if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
    res.writeHead(200, { 'content-type': contentType(path), 'content-length': st.size, server: config.name });
    const stream = createReadStream(base + path, { highWaterMark: 1024 * 1024 });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  } catch (err) {
    if (res.headersSent) return void res.destroy();
    res.writeHead(err.code === 'ENOENT' || err.code === 'ENOTDIR' ? 404 : 500).end(`${err.code ?? 'error'}\n`);
  }
});

server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () => {
  const a = server.address();
  console.log(`${config.name} listening on http://${a.address}:${a.port}`);
});
