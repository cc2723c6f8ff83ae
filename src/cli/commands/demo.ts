// Layer: cli. `virtiofs-ts demo`: the main job until the VM pieces land. Copies
// the embedded sample tree (examples/sample-share) to a temp dir, mounts it
// through /dev/fuse with our server, uses it with ordinary tools (the kernel is
// the client), writes a file and shows it landed on the host, then unmounts.
import { spawn } from 'node:child_process';
import { accessSync, constants as fsc, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKEND_KINDS, type BackendSpec } from '../../fs/backend-spec.ts';
import { DevFuseError, startDevFuse } from '../../transport/devfuse.ts';
import { oneOf, parseCommandArgs } from '../args.ts';
import { CliError, UsageError } from '../errors.ts';

export const summary = 'mount the embedded sample tree through /dev/fuse, use it with ordinary tools, unmount';

export const help = `Usage: virtiofs-ts demo [options]

A guided tour: copies the sample tree shipped in examples/sample-share to a
temp dir, mounts it through /dev/fuse with our TypeScript server, lists and
reads it with ls/cat/sha256sum, writes a file through the mount and shows it
on the host side, then unmounts and removes the temp dir. Needs root.

Options:
  --fs passthrough|memory   backend to demonstrate (default passthrough;
                            memory serves an in-memory copy instead)
  --keep                    keep the temp dir (the host-side copy) afterwards
  --debug                   stack traces on errors
  -h, --help                this text
`;

const options = {
  fs: { type: 'string' },
  keep: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const SAMPLE = fileURLToPath(new URL('../../../examples/sample-share', import.meta.url));

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const bold = (s: string) => (color ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (color ? `\x1b[2m${s}\x1b[0m` : s);
const green = (s: string) => (color ? `\x1b[32m${s}\x1b[0m` : s);

function out(s = ''): void {
  process.stdout.write(`${s}\n`);
}

/** Runs a command with a shell-like echo of it; returns its stdout. Non-zero exit fails the demo. */
async function show(cwd: string, argv: string[], shownAs?: string): Promise<string> {
  out(bold(`$ ${shownAs ?? argv.join(' ')}`));
  const child = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (stdout.trim()) for (const line of stdout.trimEnd().split('\n')) out(line ? `  ${line}` : '');
  if (code !== 0) throw new CliError(`'${shownAs ?? argv.join(' ')}' failed (exit ${code}): ${stderr.trim().split('\n')[0]}`);
  return stdout;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('demo', argv, options);
  if (positionals.length > 0) throw new UsageError(`demo takes no arguments (got '${positionals[0]}')`, 'demo');
  const kind = oneOf('demo', 'fs', values.fs, BACKEND_KINDS, 'passthrough');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new CliError('the demo mounts a FUSE file system and needs root; run it with sudo');
  }
  try {
    accessSync('/dev/fuse', fsc.R_OK | fsc.W_OK);
  } catch {
    throw new CliError('/dev/fuse is missing or not accessible: load the FUSE module (modprobe fuse)');
  }

  const base = mkdtempSync(join(tmpdir(), 'virtiofs-ts-demo-'));
  const share = join(base, 'share');
  const mnt = join(base, 'mnt');
  cpSync(SAMPLE, share, { recursive: true, verbatimSymlinks: true });
  mkdirSync(mnt);
  const rel = (p: string) => relative(base, p) || '.';

  out(bold('virtiofs-ts demo') + dim(': the Linux kernel as the client of our TypeScript FUSE server'));
  out();
  out(`Working in ${base}`);
  out(`  host side:   ${rel(share)}/   ${dim('(a copy of examples/sample-share)')}`);
  out(`  mount point: ${rel(mnt)}/`);
  out();

  const backend: BackendSpec = { kind, sharedDir: share, readonly: false, cache: 'auto', xattr: false, writeback: false };
  let session;
  try {
    session = await startDevFuse({ mountpoint: mnt, backend, log: (level, msg) => process.stderr.write(`virtiofs-ts: ${level}: ${msg}\n`) });
  } catch (err) {
    rmSync(base, { recursive: true, force: true });
    if (err instanceof DevFuseError) throw new CliError(err.message);
    throw err;
  }
  let unmounted = false;
  const finish = async () => {
    if (!unmounted) {
      unmounted = true;
      session.unmount();
    }
    return session.done;
  };
  const onSignal = () => void finish();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    out(green(`1. Mounted ${rel(share)} at ${rel(mnt)} (fuse.virtiofs-ts, ${kind} backend)`));
    await show(base, ['grep', ' fuse.virtiofs-ts ', '/proc/self/mountinfo'], `grep fuse.virtiofs-ts /proc/self/mountinfo`);
    out();
    out(green('2. Listing and reading through the mount'));
    await show(base, ['ls', '-lA', '--time-style=+', 'mnt'], 'ls -lA mnt');
    await show(base, ['find', 'mnt', '-type', 'f']);
    await show(base, ['cat', 'mnt/hello.txt']);
    await show(base, ['head', '-n', '4', 'mnt/start-here.md'], 'head -n 4 mnt/start-here.md   # through a symlink');
    await show(base, ['awk', '-F,', 'NR > 1 { s += $2 } END { print "sum of squares 1..20 =", s }', 'mnt/data/numbers.csv'], `awk -F, '{ s += $2 } ...' mnt/data/numbers.csv`);
    out();
    out(green('3. Writing through the mount'));
    const stamp = new Date().toISOString();
    await show(base, ['sh', '-c', `echo "written through FUSE at ${stamp}" > mnt/greeting.txt`], `echo "written through FUSE at ${stamp}" > mnt/greeting.txt`);
    await show(base, ['mkdir', '-p', 'mnt/new-dir/sub']);
    await show(base, ['cp', 'mnt/data/numbers.csv', 'mnt/new-dir/sub/copy.csv']);
    out();
    if (kind === 'passthrough') {
      out(green('4. The host side sees the changes (no FUSE involved here)'));
      await show(base, ['cat', 'share/greeting.txt']);
      await show(base, ['sha256sum', 'share/new-dir/sub/copy.csv', 'mnt/new-dir/sub/copy.csv']);
      const host = readFileSync(join(share, 'greeting.txt'), 'utf8');
      if (!host.includes(stamp)) throw new CliError('the file written through the mount did not reach the host directory');
    } else {
      out(green('4. The memory backend keeps changes in the server (the host copy is untouched)'));
      await show(base, ['cat', 'mnt/greeting.txt']);
      await show(base, ['ls', 'share'], 'ls share   # no greeting.txt: it lives in the server');
    }
    await show(base, ['df', '-h', 'mnt']);
    out();
  } finally {
    const result = await finish();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    out(green(`5. Unmounted ${rel(mnt)}; the server answered ${result.requests} requests.`));
    if (values.keep) out(`Kept ${base}`);
    else rmSync(base, { recursive: true, force: true });
  }
  out();
  out(`Next: ${bold('sudo npx virtiofs-ts mount <dir> <mountpoint>')} serves your own directory until Ctrl-C.`);
  return 0;
}
