// Layer: driver (plain JS on purpose: it runs on Node's module-loader hooks
// thread, which has no TypeScript loader of its own). Module loader hooks for
// `virtiofs-ts boot`: modules under the virtiofs: scheme are resolved like
// file URLs and their source is fetched from the main thread, which reads
// them through the virtio-fs driver. Imports nothing.
//
// Supported: ES modules (.js, .mjs) and JSON, relative and absolute imports
// between them, and node: builtins. Bare package names resolve only through
// the host's normal resolution (no node_modules lookup on the virtio-fs root).
let port = null;
let nextId = 1;
const waiting = new Map();

export function initialize(data) {
  port = data.port;
  port.on('message', (m) => {
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.error) w.reject(Object.assign(new Error(m.error), { code: m.code }));
    else w.resolve(m.source);
  });
  // Referenced on purpose: a load awaiting its source must keep this hooks
  // thread turning (it does not keep the process alive: Node unrefs the
  // hooks thread itself).
}

function fetchSource(path) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    port.postMessage({ id, path });
  });
}

export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL;
  if (specifier.startsWith('virtiofs:')) return { url: new URL(specifier).href, shortCircuit: true };
  if (parent && parent.startsWith('virtiofs:') && (specifier.startsWith('./') || specifier.startsWith('../') || specifier.startsWith('/'))) {
    return { url: new URL(specifier, parent).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith('virtiofs:')) return nextLoad(url, context);
  const path = decodeURIComponent(new URL(url).pathname);
  const source = await fetchSource(path);
  const format = path.endsWith('.json') ? 'json' : 'module';
  return { format, source: format === 'json' ? Buffer.from(source).toString('utf8') : Buffer.from(source), shortCircuit: true };
}
