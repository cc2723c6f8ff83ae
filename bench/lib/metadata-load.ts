// bench/lib: metadata load, run as its own process (may import node:* only).
// Usage: node --import tsx bench/lib/metadata-load.ts <empty-or-missing-dir> <count>
// Creates <count> empty files, stats each, lists the directory, unlinks each,
// timing every phase with plain synchronous fs calls (one syscall per op, no
// thread pool, no shell), and prints one JSON line:
//   {"count":N,"phases":{"create":{"seconds":s,"ops":N},...}}
// It checks what it measures: readdir must return exactly the files created.
import { closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

function main(): void {
  const [dir, countArg] = process.argv.slice(2);
  const count = Number(countArg);
  if (!dir || !Number.isInteger(count) || count <= 0) {
    process.stderr.write('usage: metadata-load.ts <dir> <count>\n');
    process.exit(2);
  }
  mkdirSync(dir, { recursive: true });
  if (readdirSync(dir).length !== 0) throw new Error(`${dir} is not empty`);
  // Names like a real tree: varied length, shared prefix.
  const names = Array.from({ length: count }, (_, i) => `file-${i.toString(36).padStart(4, '0')}.dat`);
  const paths = names.map((n) => join(dir, n));
  const phases: Record<string, { seconds: number; ops: number }> = {};
  const time = (phase: string, ops: number, fn: () => void) => {
    const t0 = process.hrtime.bigint();
    fn();
    phases[phase] = { seconds: Number(process.hrtime.bigint() - t0) / 1e9, ops };
  };

  const createFlags = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY;
  time('create', count, () => {
    for (const p of paths) closeSync(openSync(p, createFlags, 0o644));
  });
  time('stat', count, () => {
    for (const p of paths) {
      if (!lstatSync(p).isFile()) throw new Error(`${p} is not a file`);
    }
  });
  let listed: string[] = [];
  time('readdir', count, () => {
    listed = readdirSync(dir);
  });
  const want = new Set(names);
  if (listed.length !== count || !listed.every((n) => want.delete(n))) {
    throw new Error(`readdir returned ${listed.length} names, expected the ${count} created`);
  }
  time('unlink', count, () => {
    for (const p of paths) unlinkSync(p);
  });
  rmdirSync(dir);
  process.stdout.write(JSON.stringify({ count, phases }) + '\n');
}

main();
