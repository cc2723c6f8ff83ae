// Layer: cli (the composition root). A small dispatcher: each command lives in
// commands/<name>.ts and exports `summary`, `help` and `run(argv) -> exit code`.
// Commands are imported lazily so `--help` and one command never pay for the
// others. Failures become one line on stderr (stacks only with --debug or
// VIRTIOFS_TS_DEBUG=1); usage errors exit 2.
import { pathToFileURL } from 'node:url';
import { CliError, UsageError } from './errors.ts';

export interface CommandModule {
  summary: string;
  help: string;
  run(argv: string[]): Promise<number>;
}

/** Add a command: one line here plus a module in commands/. */
export const commands: Record<string, () => Promise<CommandModule>> = {
  mount: () => import('./commands/mount.ts'),
  serve: () => import('./commands/serve.ts'),
  demo: () => import('./commands/demo.ts'),
  run: () => import('./commands/run.ts'),
  client: () => import('./commands/client.ts'),
  boot: () => import('./commands/boot.ts'),
};

const PROG = 'virtiofs-ts';

function debugEnabled(argv: string[]): boolean {
  return argv.includes('--debug') || process.env.VIRTIOFS_TS_DEBUG === '1';
}

async function usage(): Promise<string> {
  const lines = [`Usage: ${PROG} <command> [options]`, '', 'Commands:'];
  const names = Object.keys(commands);
  const width = Math.max(...names.map((n) => n.length));
  for (const name of names) {
    let summary = '';
    try {
      summary = (await commands[name]!()).summary;
    } catch {
      summary = '(unavailable in this checkout)';
    }
    lines.push(`  ${name.padEnd(width)}  ${summary}`);
  }
  lines.push('', `Run '${PROG} <command> --help' for a command's options.`);
  return lines.join('\n');
}

/** Prints an error as one line (plus the stack when debugging). */
export function reportError(err: unknown, debug: boolean): number {
  if (err instanceof UsageError) {
    const hint = err.command ? `run '${PROG} ${err.command} --help'` : `run '${PROG} --help'`;
    process.stderr.write(`${PROG}${err.command ? ` ${err.command}` : ''}: ${err.message} (${hint})\n`);
    return 2;
  }
  if (err instanceof CliError) {
    process.stderr.write(`${PROG}: ${err.message}\n`);
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${PROG}: internal error: ${msg.split('\n')[0]}${debug ? '' : ' (set VIRTIOFS_TS_DEBUG=1 for details)'}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return 1;
}

export async function main(argv: string[]): Promise<number> {
  const debug = debugEnabled(argv);
  const onFatal = (err: unknown) => {
    const code = reportError(err, debug);
    // process.exit() would wait for worker threads, and a data-plane worker
    // blocked in read(2) never stops: leave through libc _exit instead.
    import('../sys/process.ts').then(
      (m) => m.exitNow(code),
      () => process.exit(code),
    );
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      const text = await usage();
      if (name === undefined) {
        process.stderr.write(`${text}\n`);
        return 2;
      }
      process.stdout.write(`${text}\n`);
      return 0;
    }
    if (name === '--version' || name === '-V') {
      const { readFileSync } = await import('node:fs');
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
      process.stdout.write(`${pkg.version}\n`);
      return 0;
    }
    const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
    if (!load) throw new UsageError(`unknown command '${name}'; commands: ${Object.keys(commands).join(', ')}`);
    const cmd = await load();
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(`${cmd.help.trimEnd()}\n`);
      return 0;
    }
    return await cmd.run(rest);
  } catch (err) {
    return reportError(err, debug);
  }
}

// Run when this file is the entry point (node --import tsx src/cli/main.ts ...);
// bin/virtiofs-ts.js imports main() instead.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
