// Layer: guest tooling (host side), pure. Imports node:buffer only.
// Just enough ELF64 reading for the guest harness: a kernel module's
// `.modinfo` strings (to order insmod by "depends=") and whether an executable
// asks for a program interpreter (a dynamic busybox cannot run in an initramfs
// that has no libc). Avoids needing kmod's modinfo on the host.

import type { Buffer } from 'node:buffer';

const ELF_MAGIC = 0x464c457f; // "\x7fELF" read little-endian
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const PT_INTERP = 3;

function checkElf64(b: Buffer, what: string): void {
  if (b.length < 64 || b.readUInt32LE(0) !== ELF_MAGIC) throw new Error(`${what}: not an ELF file`);
  if (b[4] !== ELFCLASS64 || b[5] !== ELFDATA2LSB) throw new Error(`${what}: not a little-endian ELF64 file`);
}

function u64(b: Buffer, off: number): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('ELF offset too large');
  return Number(v);
}

/** The NUL-separated key=value strings of a module's `.modinfo` section, as a multimap. */
export function readModinfo(b: Buffer, what = 'module'): Map<string, string[]> {
  checkElf64(b, what);
  const shoff = u64(b, 0x28);
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const shstrndx = b.readUInt16LE(0x3e);
  const section = (i: number) => {
    const o = shoff + i * shentsize;
    if (o + 64 > b.length) throw new Error(`${what}: section header ${i} out of bounds`);
    return { name: b.readUInt32LE(o), offset: u64(b, o + 0x18), size: u64(b, o + 0x20) };
  };
  const strtab = section(shstrndx);
  const out = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const nameStart = strtab.offset + s.name;
    const nameEnd = b.indexOf(0, nameStart);
    if (b.toString('latin1', nameStart, nameEnd) !== '.modinfo') continue;
    if (s.offset + s.size > b.length) throw new Error(`${what}: .modinfo out of bounds`);
    for (const item of b.toString('latin1', s.offset, s.offset + s.size).split('\0')) {
      const eq = item.indexOf('=');
      if (eq <= 0) continue;
      const key = item.slice(0, eq);
      const list = out.get(key) ?? [];
      list.push(item.slice(eq + 1));
      out.set(key, list);
    }
    return out;
  }
  throw new Error(`${what}: no .modinfo section (not a kernel module?)`);
}

/** True when the executable has a PT_INTERP program header (i.e. is dynamically linked). */
export function hasInterpreter(b: Buffer, what = 'executable'): boolean {
  checkElf64(b, what);
  const phoff = u64(b, 0x20);
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (o + 4 > b.length) throw new Error(`${what}: program header ${i} out of bounds`);
    if (b.readUInt32LE(o) === PT_INTERP) return true;
  }
  return false;
}
