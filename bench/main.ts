// bench: the dispatcher behind `npm run bench -- <name> [options]` (may import
// node:* and bench/*). Each benchmark is a module exporting
// `usage: string` and `main(argv: string[]): Promise<number>` (the exit code);
// add one by adding a line to BENCHMARKS. Modules load lazily so one
// benchmark's missing prerequisites never break another.

interface BenchModule {
  usage: string;
  main(argv: string[]): Promise<number>;
}

const BENCHMARKS: Record<string, { summary: string; load: () => Promise<BenchModule> }> = {
  devfuse: {
    summary: 'our /dev/fuse mount vs native, bindfs and libfuse passthrough_ll (fio matrices + metadata)',
    load: () => import('./devfuse.ts'),
  },
  guest: { summary: 'a QEMU guest (TCG) with a virtio-fs root: our daemon vs C virtiofsd per cache mode (fio, metadata, boot time), as ratios', load: () => import('./guest.ts') },
  driver: { summary: 'the thesis read matrix through our virtio-fs driver: Node fs vs C virtiofsd vs our daemon (DAX on/off), app startup, static server req/s', load: () => import('./driver.ts') },
};

function help(): string {
  const names = Object.keys(BENCHMARKS);
  const w = Math.max(...names.map((n) => n.length));
  return [
    'usage: npm run bench -- <benchmark> [options]',
    '       npm run bench -- <benchmark> --help',
    '',
    'Benchmarks:',
    ...names.map((n) => `  ${n.padEnd(w)}  ${BENCHMARKS[n]!.summary}`),
    '',
    'Results go to bench/results/<benchmark>.{json,md,png}.',
    '',
  ].join('\n');
}

async function dispatch(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help());
    return name ? 0 : 2;
  }
  const entry = BENCHMARKS[name];
  if (!entry) {
    process.stderr.write(`bench: unknown benchmark "${name}"\n\n${help()}`);
    return 2;
  }
  const mod = await entry.load();
  return mod.main(rest);
}

dispatch(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
