// Which CLI the bin scripts run: dist/cli/main.js (plain JavaScript from
// `npm run build`) when it is fresh, otherwise src/cli/main.ts through tsx
// (TypeScript transpiled at run time: ~0.3-0.6 s more per start). Fresh means
// dist/.build-stamp exists and nothing under src/ (file or directory: a
// deleted or renamed file touches its directory) is newer than it; a stale
// or half-written dist/ is never run. VIRTIOFS_TS_FROM=src forces the
// sources, =dist forces dist/ (an error when it is missing or stale).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Why dist/ cannot be used, or '' when it is fresh. */
export function distStaleReason() {
  let stamp;
  try {
    stamp = statSync(join(root, 'dist/.build-stamp')).mtimeMs;
  } catch {
    return 'dist/ is not built (npm run build)';
  }
  const walk = (dir) => {
    if (statSync(dir).mtimeMs > stamp) return dir;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        const hit = walk(p);
        if (hit) return hit;
      } else if (statSync(p).mtimeMs > stamp) return p;
    }
    return '';
  };
  const newer = walk(join(root, 'src'));
  return newer ? `${newer} is newer than dist/ (npm run build)` : '';
}

/** Imports the CLI's main module from dist/ or from the sources. */
export async function loadCli() {
  const from = process.env.VIRTIOFS_TS_FROM;
  if (from !== 'src') {
    const stale = distStaleReason();
    if (!stale) return import('../dist/cli/main.js');
    if (from === 'dist') throw new Error(`VIRTIOFS_TS_FROM=dist: ${stale}`);
  }
  const { register } = await import('tsx/esm/api');
  register();
  return import('../src/cli/main.ts');
}
