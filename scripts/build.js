#!/usr/bin/env node
// `npm run build` (also run by `npm ci` through the `prepare` script): emits
// src/**/*.ts as JavaScript into dist/ (tsc -p tsconfig.build.json: no type
// check, that is `npm run typecheck`'s job; relative `.ts` imports rewritten
// to `.js`) and copies the plain .mjs files next to them. dist/ keeps src/'s
// directory depth, so `new URL('../../x', import.meta.url)` paths still land
// in the checkout. bin/*.js run dist/ only while bin/cli-entry.js finds it
// fresh; the stamp written last carries the build's START time, so a source
// edited during the build makes the result stale instead of silently old.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');
const STAMP = '.build-stamp';

const tsc = join(root, 'node_modules/typescript/bin/tsc');
if (!existsSync(tsc)) {
  // `npm ci --omit=dev` (prepare still runs): nothing to build with; bin/ runs the sources.
  console.error('build: typescript is not installed (dev dependency); skipping dist/');
  process.exit(0);
}
const started = new Date();
rmSync(join(dist, STAMP), { force: true }); // no stamp = not fresh, while we work
rmSync(dist, { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`build: tsc exited ${r.status ?? r.signal}; dist/ left without a stamp (bin/ keeps running the sources)`);
  process.exit(1);
}
const copyMjs = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) copyMjs(p);
    else if (e.name.endsWith('.mjs')) {
      const to = join(dist, relative(src, p));
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(p, to);
    }
  }
};
copyMjs(src);
writeFileSync(join(dist, STAMP), `built from src/ at ${started.toISOString()}\n`);
utimesSync(join(dist, STAMP), started, started);
console.log(`build: dist/ from src/ in ${Date.now() - started.getTime()} ms`);
