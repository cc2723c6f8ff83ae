// Keeps README.md true: every CLI command has a section, every option a
// command's --help names appears in the README, and the set-up commands the
// README promises exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, readFileSync } from 'node:fs';
import { commands } from '../../../src/cli/main.ts';

const root = new URL('../../../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');

test('README documents every command and every option of its --help', async () => {
  for (const [name, load] of Object.entries(commands)) {
    assert.match(readme, new RegExp(`^### \`virtiofs-ts ${name}\\b`, 'm'), `README has no section for '${name}'`);
    const { help } = await load();
    const options = new Set([...help.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!));
    options.delete('--help');
    for (const opt of options) assert.match(readme, new RegExp(`(?<![\\w-])${opt}(?![\\w-])`), `README does not mention ${name} ${opt}`);
  }
});

test('the set-up commands the README gives exist', () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
  assert.match(readme, /npm run demo/);
  assert.match(readme, /npm test/);
  assert.ok(pkg.scripts.demo, 'package.json has no demo script');
  assert.ok(pkg.scripts.test, 'package.json has no test script');
  assert.equal(pkg.bin['virtiofs-ts'], 'bin/virtiofs-ts.js');
  accessSync(new URL('.ci/run', root), constants.X_OK);
  accessSync(new URL('scripts/demo.sh', root), constants.R_OK);
  accessSync(new URL('bin/virtiofs-ts.js', root), constants.X_OK);
});
