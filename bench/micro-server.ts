// Micro-benchmark: Node CPU per request inside FuseServer.handle() alone (no
// transport, no syscalls), against MemoryFs. Run:
//   node --import tsx bench/micro-server.ts
// Prints CPU ns/request for GETATTR, LOOKUP, READ 4 KiB, WRITE 4 KiB, READDIRPLUS.
import { FuseServer } from '../src/fuse/server.ts';
import { Opcode } from '../src/fuse/abi.ts';
import { MemoryFs } from '../src/fs/memory/memory-fs.ts';

function req(opcode: number, nodeid: number, args: Buffer): Buffer {
  const b = Buffer.alloc(40 + args.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(2n, 8);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  args.copy(b, 40);
  return b;
}
const u32 = (x: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(x); return b; };
const u64 = (x: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(x)); return b; };
const cstr = (s: string) => Buffer.from(s + '\0');
const rw = (fh: number, off: number, size: number) => Buffer.concat([u64(fh), u64(off), u32(size), u32(0), u64(0), u32(0), u32(0)]);

const server = new FuseServer(new MemoryFs());
server.handle(req(Opcode.INIT, 0, Buffer.concat([u32(7), u32(38), u32(0), u32(0x7fffffff), u32(0), Buffer.alloc(44)])));
const created = server.handle(req(Opcode.CREATE, 1, Buffer.concat([u32(0o102), u32(0o100644), u32(0), u32(0), cstr('file')])))!;
const nodeid = Number(created.readBigUInt64LE(16));
const fh = Number(created.readBigUInt64LE(16 + 128));
const dir = Number(server.handle(req(Opcode.MKDIR, 1, Buffer.concat([u32(0o755), u32(0), cstr('dir')])))!.readBigUInt64LE(16));
for (let i = 0; i < 20; i++) server.handle(req(Opcode.MKNOD, dir, Buffer.concat([u32(0o100644), u32(0), u32(0), u32(0), cstr(`e${i}`)])));
const dfh = Number(server.handle(req(Opcode.OPENDIR, dir, Buffer.concat([u32(0), u32(0)])))!.readBigUInt64LE(16));
const data = Buffer.alloc(4096, 0x61);
server.handle(req(Opcode.WRITE, nodeid, Buffer.concat([rw(fh, 0, 4096), data])));

const cases: [string, Buffer][] = [
  ['GETATTR', req(Opcode.GETATTR, nodeid, Buffer.alloc(16))],
  ['LOOKUP', req(Opcode.LOOKUP, 1, cstr('file'))],
  ['READ 4 KiB', req(Opcode.READ, nodeid, rw(fh, 0, 4096))],
  ['WRITE 4 KiB', req(Opcode.WRITE, nodeid, Buffer.concat([rw(fh, 0, 4096), data]))],
  ['READDIR 20', req(Opcode.READDIR, dir, rw(dfh, 0, 4096))],
];
for (const [name, r] of cases) {
  const check = server.handle(r);
  if (!check || check.readInt32LE(4) !== 0) throw new Error(`${name} failed: ${check?.readInt32LE(4)}`);
  for (let i = 0; i < 20000; i++) server.handle(r); // warm up
  const n = 200000;
  // CPU time, not wall time: the figure stays honest on a shared, loaded machine.
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) server.handle(r);
  const c = process.cpuUsage(c0);
  const ns = ((c.user + c.system) * 1000) / n;
  console.log(`${name.padEnd(12)} ${ns.toFixed(0).padStart(6)} ns CPU/request`);
}
