// Layer: cli. `virtiofs-ts client`: poke any vhost-user-fs backend (ours, QEMU's
// C virtiofsd) through the guest-side driver, without a VM. Imports
// driver/session.ts and cli helpers.
import { readFileSync, writeFileSync } from 'node:fs';
import { connectVirtioFs, parseSize, type VirtioFsSession } from '../../driver/session.ts';
import { parseCommandArgs } from '../args.ts';
import { CliError, UsageError } from '../errors.ts';

export const summary = 'talk to a vhost-user-fs backend through the TypeScript virtio-fs driver (ls, stat, cat, put, get)';

export const help = `Usage: virtiofs-ts client --socket PATH [--dax-window SIZE] COMMAND [ARGS]

Connects to the backend's vhost-user socket as a VM would (guest memory in a
memfd, vrings, FUSE over virtio) and runs one command on the shared directory.
The backend serves one frontend: start it again for each client run.

Commands:
  ls [PATH]            list a directory (type, size, name)
  stat PATH            attributes as JSON
  cat PATH             write the file to stdout
  get PATH LOCAL       copy a file from the share to LOCAL
  put LOCAL PATH       copy LOCAL into the share
  mkdir PATH           make a directory (with parents)
  rm PATH              remove a file or a whole directory

Options:
  --socket PATH        the backend's socket (virtiofsd --socket-path)
  --dax-window SIZE    DAX window (e.g. 64M, 1G; 0 = off, the default)
  --timeout MS         per-request timeout (default 30000)
  -h, --help           this text
`;

const options = {
  socket: { type: 'string' },
  'dax-window': { type: 'string' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const TYPE = (mode: number) => ({ 0o040000: 'd', 0o120000: 'l', 0o100000: '-', 0o010000: 'p', 0o140000: 's', 0o020000: 'c', 0o060000: 'b' } as Record<number, string>)[mode & 0o170000] ?? '?';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('client', argv, options);
  if (!values.socket) throw new UsageError('--socket PATH is required', 'client');
  const [cmd, ...args] = positionals;
  if (!cmd) throw new UsageError('a command is required (ls, stat, cat, get, put, mkdir, rm)', 'client');
  let dax = 0;
  try {
    dax = parseSize(values['dax-window'] ?? '0');
  } catch (err) {
    throw new UsageError(`--dax-window: ${(err as Error).message}`, 'client');
  }
  const need = (n: number) => {
    if (args.length !== n) throw new UsageError(`'${cmd}' takes ${n} argument${n === 1 ? '' : 's'}`, 'client');
  };
  const known = ['ls', 'stat', 'cat', 'get', 'put', 'mkdir', 'rm'];
  if (!known.includes(cmd)) throw new UsageError(`unknown client command '${cmd}'; commands: ${known.join(', ')}`, 'client');
  if (cmd === 'ls') { if (args.length > 1) need(1); } else if (cmd === 'get' || cmd === 'put') need(2); else need(1);
  let s: VirtioFsSession;
  try {
    s = await connectVirtioFs({ socketPath: values.socket, daxWindowBytes: dax, requestTimeoutMs: Number(values.timeout ?? 30000) });
  } catch (err) {
    throw new CliError(`cannot connect to ${values.socket}: ${(err as Error).message}`);
  }
  try {
    const fs = s.fs;
    switch (cmd) {
      case 'ls': {
        const dir = args[0] ?? '/';
        for (const name of await fs.readdir(dir)) {
          const st = await fs.lstat(`${dir}/${name}`);
          process.stdout.write(`${TYPE(st.mode)}${(st.mode & 0o7777).toString(8).padStart(4, '0')} ${String(st.size).padStart(12)} ${name}\n`);
        }
        break;
      }
      case 'stat': {
        const st = await fs.lstat(args[0]!);
        process.stdout.write(`${JSON.stringify({ ...st, type: TYPE(st.mode), mode: `0${st.mode.toString(8)}` }, null, 2)}\n`);
        break;
      }
      case 'cat':
        for await (const chunk of fs.createReadStream(args[0]!, { highWaterMark: 1024 * 1024 })) {
          if (!process.stdout.write(chunk as Buffer)) await new Promise((r) => process.stdout.once('drain', r));
        }
        break;
      case 'get':
        writeFileSync(args[1]!, (await fs.readFile(args[0]!)) as Buffer);
        break;
      case 'put':
        await fs.writeFile(args[1]!, readFileSync(args[0]!));
        break;
      case 'mkdir':
        await fs.mkdir(args[0]!, { recursive: true });
        break;
      case 'rm':
        await fs.rm(args[0]!, { recursive: true });
        break;
    }
    if (dax > 0 && s.dax) process.stderr.write(`dax: ${s.dax.enabled ? 'on' : `off (${s.dax.disabledReason})`} ${JSON.stringify(s.dax.stats)}\n`);
  } catch (err) {
    const e = err as { code?: string; message: string };
    throw new CliError(e.code ? e.message : `client ${cmd}: ${e.message}`);
  } finally {
    await s.close();
  }
  return 0;
}
