// The import-restriction lint STYLE.md section 7 asks CI to enforce: reads
// every src/**/*.ts, resolves its static and dynamic imports, and checks the
// dependency rules between layers. A violation names the file, the import and
// the rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(ROOT, 'src');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : /\.(ts|mjs|js)$/.test(name) ? [p] : [];
  });
}

/** Import specifiers of a module: `import ... from`, `export ... from`, `import 'x'`, `import('x')`. */
function importsOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  for (const re of [/\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g]) {
    for (const m of code.matchAll(re)) out.push(m[1]!);
  }
  return out;
}

/** A specifier as seen from src/: 'fuse/abi.ts' for relative imports, the bare name otherwise. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return spec;
  return relative(SRC, normalize(join(dirname(file), spec)));
}

interface Rule {
  name: string;
  applies: (from: string) => boolean;
  forbids: (to: string) => boolean;
}

const under = (dir: string) => (p: string) => p.startsWith(`${dir}/`);
const RULES: Rule[] = [
  {
    name: 'rule 1: fuse/, virtio/ and vhost-user/message.ts are pure (no sys/, node:fs, node:net, koffi, no I/O layers)',
    applies: (f) => under('fuse')(f) || under('virtio')(f) || f === 'vhost-user/message.ts',
    forbids: (t) =>
      ['node:fs', 'node:fs/promises', 'node:net', 'node:child_process', 'node:worker_threads', 'koffi', 'fs', 'net'].includes(t) ||
      ['sys', 'fs', 'transport', 'cli', 'vhost-user', 'driver', 'guest'].some((d) => under(d)(t) && t !== 'vhost-user/message.ts'),
  },
  {
    name: 'rule 2: fuse/server.ts sees only the FileSystem contract and the codec',
    applies: (f) => f === 'fuse/server.ts',
    forbids: (t) => ['fs', 'virtio', 'transport'].some((d) => under(d)(t)),
  },
  {
    name: 'rule 3: fs/ backends never import the server, queues or transports',
    applies: under('fs'),
    forbids: (t) => t === 'fuse/server.ts' || ['virtio', 'vhost-user', 'transport', 'cli', 'driver'].some((d) => under(d)(t)),
  },
  {
    name: 'rule 5: driver/ never imports fs/ or fuse/server.ts',
    applies: under('driver'),
    forbids: (t) => under('fs')(t) || t === 'fuse/server.ts',
  },
  {
    name: 'rule 6: only cli/ (and transport/ itself) imports transport/',
    applies: (f) => !under('cli')(f) && !under('transport')(f),
    forbids: under('transport'),
  },
  {
    name: 'rule 7: only sys/ffi.ts imports koffi',
    applies: (f) => f !== 'sys/ffi.ts',
    forbids: (t) => t === 'koffi' || t.startsWith('koffi/'),
  },
  {
    name: 'cli/ is the composition root: nothing else imports it',
    applies: (f) => !under('cli')(f),
    forbids: under('cli'),
  },
  {
    name: 'sys/ imports only node: modules, koffi (through ffi.ts) and sys/',
    applies: under('sys'),
    forbids: (t) => !(t.startsWith('node:') || t === 'koffi' || under('sys')(t)),
  },
];

test('src/ follows the layer rules of STYLE.md section 7', () => {
  const files = walk(SRC);
  assert.ok(files.length > 20, 'no sources found');
  const violations: string[] = [];
  for (const file of files) {
    const from = relative(SRC, file);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const to = target(file, spec);
      for (const rule of RULES) if (rule.applies(from) && rule.forbids(to)) violations.push(`${from} imports ${spec}: ${rule.name}`);
    }
  }
  assert.deepEqual(violations, []);
});

test('the import scanner sees static, re-export, side-effect and dynamic imports', () => {
  const src = [
    "import { a } from './a.ts';",
    "import type {\n  B,\n} from '../fs/b.ts';",
    "export { c } from './c.ts';",
    "import 'koffi';",
    "const m = await import('./commands/d.ts');",
    "// import { x } from './commented.ts';",
  ].join('\n');
  assert.deepEqual(importsOf(src).sort(), ['../fs/b.ts', './a.ts', './c.ts', './commands/d.ts', 'koffi'].sort());
  assert.equal(target(join(SRC, 'fuse', 'server.ts'), '../fs/create.ts'), 'fs/create.ts');
  const rule = RULES.find((r) => r.name.startsWith('rule 2'))!;
  assert.ok(rule.applies('fuse/server.ts') && rule.forbids('fs/create.ts'));
});
