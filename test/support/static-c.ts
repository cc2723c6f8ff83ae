// Test support: builds small static C programs that tests copy into guests
// (busybox roots have no libc to link against). Imports node:* only.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CACHE_DIR = fileURLToPath(new URL('../../node_modules/.cache/virtiofs-ts/', import.meta.url));
const builds = new Map<string, Promise<Buffer>>();

/**
 * Compiles `source` with gcc -O2 -static -Wall and returns the binary's bytes.
 * Cached by source hash under node_modules/.cache/virtiofs-ts (built under a
 * unique name and renamed: concurrent test files may race); a failed build is
 * not cached, so it can succeed after the missing package is installed.
 */
export function compileStaticC(name: string, source: string): Promise<Buffer> {
  const out = join(CACHE_DIR, `${name}-${createHash('sha256').update(source).digest('hex').slice(0, 16)}`);
  let build = builds.get(out);
  if (build) return build;
  build = (async () => {
    if (!existsSync(out)) {
      mkdirSync(CACHE_DIR, { recursive: true });
      const src = `${out}.${process.pid}.c`;
      const tmp = `${out}.${process.pid}.tmp`;
      writeFileSync(src, source);
      try {
        await new Promise<void>((resolve, reject) =>
          execFile('gcc', ['-O2', '-static', '-Wall', '-o', tmp, src], { timeout: 120_000 }, (err, _o, stderr) =>
            err ? reject(new Error(`cannot compile ${name} with gcc -static (install gcc libc6-dev): ${stderr || err.message}`)) : resolve(),
          ),
        );
        renameSync(tmp, out);
      } finally {
        rmSync(src, { force: true });
        rmSync(tmp, { force: true });
      }
    }
    return readFileSync(out);
  })();
  builds.set(out, build);
  build.catch(() => builds.delete(out));
  return build;
}
