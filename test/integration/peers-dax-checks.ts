// Test support (no test of its own): the guest-side DAX checks of issue 5,
// shared by test/integration/peers-dax.test.ts and whoever lands the SHMEM
// backend. May import node:* only.
//
// prepareDaxShare() fills a host dir; daxScript() is the busybox sh script the
// guest runs on the mounted share (cwd = the share); checkDaxRun() compares
// what the guest printed and left behind with what the host expects. A small
// static C probe (compiled once with gcc -static, put in the guest as
// /bin/vfts-dax-probe) does what busybox cannot: statx's DAX attribute,
// reading and writing through a MAP_SHARED mapping, pwrite+fsync.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { compileStaticC } from '../support/static-c.ts';

const PROBE_C = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif
/* The same byte pattern the host computes (peers-dax-checks.ts: pattern()). */
static unsigned char pat(unsigned long seed, unsigned long i) { return (unsigned char)(seed * 131 + i * 7 + (i >> 8)); }
static int die(const char *what, const char *file) { fprintf(stderr, "vfts-dax-probe: %s %s: %m\n", what, file); return 1; }
int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: vfts-dax-probe statx-dax|mmap-fnv|mmap-write|pwrite-fsync FILE [OFF LEN SEED]\n"); return 2; }
  const char *op = argv[1], *file = argv[2];
  if (!strcmp(op, "statx-dax")) {
    struct statx sx;
    if (statx(AT_FDCWD, file, 0, STATX_BASIC_STATS, &sx) < 0) return die("statx", file);
    printf("%s dax=%d known=%d\n", file, !!(sx.stx_attributes & STATX_ATTR_DAX), !!(sx.stx_attributes_mask & STATX_ATTR_DAX));
    return 0;
  }
  if (!strcmp(op, "mmap-fnv")) {
    /* Reads every byte through a shared mapping (page faults; DAX maps window pages). */
    int fd = open(file, O_RDONLY);
    if (fd < 0) return die("open", file);
    struct stat st;
    if (fstat(fd, &st) < 0) return die("fstat", file);
    uint64_t h = 0xcbf29ce484222325ULL;
    if (st.st_size > 0) {
      unsigned char *p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) return die("mmap", file);
      for (off_t i = 0; i < st.st_size; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
      munmap(p, st.st_size);
    }
    printf("fnv64 %016llx %s\n", (unsigned long long)h, file);
    return 0;
  }
  if (argc != 6) { fprintf(stderr, "vfts-dax-probe %s FILE OFF LEN SEED\n", op); return 2; }
  unsigned long off = strtoul(argv[3], 0, 0), len = strtoul(argv[4], 0, 0), seed = strtoul(argv[5], 0, 0);
  int fd = open(file, O_RDWR);
  if (fd < 0) return die("open", file);
  if (!strcmp(op, "mmap-write")) {
    /* Maps the pages around [off, off+len), stores the pattern, msyncs. The file must already be that long. */
    long pg = sysconf(_SC_PAGESIZE);
    unsigned long start = off & ~(unsigned long)(pg - 1), maplen = off + len - start;
    unsigned char *p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, start);
    if (p == MAP_FAILED) return die("mmap", file);
    for (unsigned long i = 0; i < len; i++) p[off - start + i] = pat(seed, i);
    if (msync(p, maplen, MS_SYNC) < 0) return die("msync", file);
    munmap(p, maplen);
  } else if (!strcmp(op, "pwrite-fsync")) {
    unsigned char *b = malloc(len ? len : 1);
    for (unsigned long i = 0; i < len; i++) b[i] = pat(seed, i);
    if (pwrite(fd, b, len, off) != (ssize_t)len) return die("pwrite", file);
    if (fsync(fd) < 0) return die("fsync", file);
    free(b);
  } else { fprintf(stderr, "vfts-dax-probe: unknown op %s\n", op); return 2; }
  if (close(fd) < 0) return die("close", file);
  printf("%s %s ok\n", op, file);
  return 0;
}
`;

export const PROBE_GUEST_PATH = '/bin/vfts-dax-probe';

/** The pattern the probe writes: byte i of a run with this seed. */
export function pattern(seed: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (seed * 131 + i * 7 + (i >>> 8)) & 0xff;
  return b;
}

export function fnv64(b: Buffer): string {
  let h = 0xcbf29ce484222325n;
  for (const x of b) h = BigInt.asUintN(64, (h ^ BigInt(x)) * 0x100000001b3n);
  return h.toString(16).padStart(16, '0');
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Compiles the probe (cached by source hash) and returns its bytes. */
export const daxProbe = (): Promise<Buffer> => compileStaticC('dax-probe', PROBE_C);

/** The mmap/pwrite edits the script makes: file, op, offset, length, seed. */
const EDITS = [
  // At 0, in the middle of a page, straddling the 2 MiB DAX chunk boundary, and the last bytes.
  { file: 'mm.bin', op: 'mmap-write', off: 0, len: 100, seed: 1 },
  { file: 'mm.bin', op: 'mmap-write', off: 3 * 4096 + 17, len: 5000, seed: 2 },
  { file: 'mm.bin', op: 'mmap-write', off: 2 * 1024 * 1024 - 5, len: 10, seed: 3 },
  { file: 'mm.bin', op: 'mmap-write', off: 3 * 1024 * 1024 - 9, len: 9, seed: 4 },
  { file: 'wr.bin', op: 'pwrite-fsync', off: 12345, len: 70000, seed: 5 },
  { file: 'wr.bin', op: 'pwrite-fsync', off: 1024 * 1024 - 3, len: 3, seed: 6 },
] as const;

const TRUNC_TO = 300_000;
const EXTEND_TO = 3 * 1024 * 1024 + 1;
const TAIL_EDIT = { off: EXTEND_TO - 729, len: 729, seed: 7 };

const HC_OLD = 'old host content\n';
// Longer than the old content: the guest must also pick up the new size.
const HC_NEW = `new host content, written while the guest watches: ${'x'.repeat(5000)}\n`;
const HC_ASK = '@@dax-checks: host, change hc.txt now@@';

/**
 * runInGuest's onOutput for daxScript(): when the guest asks, the host
 * rewrites hc.txt (same inode, longer); the guest then polls until it sees the
 * new bytes (attribute/entry timeouts of cache=auto apply).
 */
export function hostChangeHook(share: DaxShare): (chunk: Buffer) => void {
  let seen = '';
  let done = false;
  return (chunk) => {
    if (done) return;
    seen = (seen + chunk.toString('latin1')).slice(-4096);
    if (!seen.includes(HC_ASK)) return;
    done = true;
    writeFileSync(join(share.dir, 'hc.txt'), HC_NEW);
  };
}

export interface DaxShare {
  dir: string;
  /** What the host started with, per file. */
  original: Record<string, Buffer>;
}

/** Fills `dir` with the files the script reads and edits. `bigBytes` should be several times the DAX window. */
export function prepareDaxShare(dir: string, bigBytes = 24 * 1024 * 1024): DaxShare {
  mkdirSync(dir, { recursive: true });
  const original: Record<string, Buffer> = {
    // Several 2 MiB chunks and a tail that is not page aligned.
    'seq.bin': randomBytes(5 * 1024 * 1024 + 123),
    'big.bin': randomBytes(bigBytes),
    'mm.bin': randomBytes(3 * 1024 * 1024),
    'wr.bin': randomBytes(1024 * 1024),
    'tr.bin': randomBytes(1024 * 1024),
    // The host rewrites it while the guest watches (hostChangeHook).
    'hc.txt': Buffer.from(HC_OLD),
  };
  for (const [name, data] of Object.entries(original)) writeFileSync(join(dir, name), data);
  return { dir, original };
}

/** The guest script; run with cwd = the mounted share. Every step prints a line the host checks. */
export function daxScript(mountpoint = '/mnt'): string {
  const p = PROBE_GUEST_PATH;
  return [
    'set -e',
    `grep " ${mountpoint} " /proc/mounts | sed 's/^/mount: /'`,
    `${p} statx-dax seq.bin`,
    'sha256sum seq.bin big.bin',
    `${p} mmap-fnv seq.bin`,
    ...EDITS.map((e) => `${p} ${e.op} ${e.file} ${e.off} ${e.len} ${e.seed}`),
    // Shrink and extend: the DAX ranges past the new EOF must go, the extension reads as zeros.
    `truncate -s ${TRUNC_TO} tr.bin`,
    `truncate -s ${EXTEND_TO} tr.bin`,
    `${p} mmap-write tr.bin ${TAIL_EDIT.off} ${TAIL_EDIT.len} ${TAIL_EDIT.seed}`,
    'sync; echo 3 > /proc/sys/vm/drop_caches',
    // The guest's view after dropping its caches: must equal the host file.
    'sha256sum mm.bin wr.bin tr.bin',
    `${p} mmap-fnv big.bin`,
    // A host-side change, seen by the guest within the cache rules (cache=auto: about a second).
    'cat hc.txt >/dev/null',
    // The harness holds back the last few dozen output bytes (they could be its exit marker): pad past them.
    `echo '${HC_ASK}'; echo "waiting for the host ${'.'.repeat(64)}"`,
    // Under DAX the new bytes show at once through the mapping, the new size only after the attribute timeout: wait for both.
    `i=0; while [ $i -lt 30 ]; do if [ "$(sha256sum < hc.txt)" = "${sha(Buffer.from(HC_NEW))}  -" ]; then break; fi; sleep 1; i=$((i+1)); done`,
    'echo host-change-after=$i hc-size=$(wc -c < hc.txt) hc-tail=$(tail -c 8 hc.txt | od -An -tx1 | tr -d " ")',
    'sha256sum hc.txt',
    'echo dax-checks-done',
  ].join('\n');
}

/** What the host files must hold after the script. */
export function expectedAfter(share: DaxShare): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(share.original)) out[k] = Buffer.from(v);
  for (const e of EDITS) pattern(e.seed, e.len).copy(out[e.file]!, e.off);
  const tr = Buffer.alloc(EXTEND_TO);
  share.original['tr.bin']!.copy(tr, 0, 0, TRUNC_TO);
  pattern(TAIL_EDIT.seed, TAIL_EDIT.len).copy(tr, TAIL_EDIT.off);
  out['tr.bin'] = tr;
  return out;
}

/** The host's rewrite of hc.txt (longer, same inode) reached the guest: new size and every byte. */
export function checkHostChange(output: string, context = ''): void {
  const why = `\n--- guest output ---\n${output}${context ? `\n${context}` : ''}`;
  const want = Buffer.from(HC_NEW);
  const seen = /hc-size=(\d+) hc-tail=(\S*)/.exec(output);
  assert.ok(
    output.includes(`${sha(want)}  hc.txt`),
    `the guest did not see the host's change to hc.txt within 30 s: it read ${seen?.[1] ?? '?'} bytes ending in ${seen?.[2] ?? '?'}, the host file has ${want.length} ending in ${want.subarray(-8).toString('hex')} (run the script with hostChangeHook() as onOutput)${why}`,
  );
}

/**
 * Asserts the guest's output and the host files; `expectDax` says whether the
 * files must be DAX inodes. `hostChange: false` leaves that part to checkHostChange().
 */
export function checkDaxRun(share: DaxShare, output: string, expectDax: boolean, context = '', opts: { hostChange?: boolean } = {}): void {
  const why = `\n--- guest output ---\n${output}${context ? `\n${context}` : ''}`;
  assert.match(output, /dax-checks-done/, `the guest script stopped early${why}`);
  const mountLine = /^mount: .*$/m.exec(output)?.[0] ?? '';
  if (expectDax) assert.match(mountLine, /dax=always/, `not mounted with dax=always${why}`);
  assert.match(output, new RegExp(`^seq\\.bin dax=${expectDax ? 1 : 0} known=1$`, 'm'), `statx DAX attribute is not ${expectDax ? 'set' : 'clear'}${why}`);
  const o = share.original;
  assert.ok(output.includes(`${sha(o['seq.bin']!)}  seq.bin`), `guest read other bytes of seq.bin${why}`);
  assert.ok(output.includes(`${sha(o['big.bin']!)}  big.bin`), `guest read other bytes of big.bin${why}`);
  assert.ok(output.includes(`fnv64 ${fnv64(o['seq.bin']!)} seq.bin`), `guest read other bytes of seq.bin through mmap${why}`);
  assert.ok(output.includes(`fnv64 ${fnv64(o['big.bin']!)} big.bin`), `guest read other bytes of big.bin through mmap${why}`);
  if (opts.hostChange ?? true) checkHostChange(output, context);
  const want = expectedAfter(share);
  for (const name of ['mm.bin', 'wr.bin', 'tr.bin']) {
    const host = readFileSync(join(share.dir, name));
    assert.equal(host.length, want[name]!.length, `${name}: host size ${host.length}, expected ${want[name]!.length}${why}`);
    const bad = host.findIndex((b, i) => b !== want[name]![i]);
    assert.equal(bad, -1, `${name}: host byte ${bad} is ${host[bad]}, expected ${want[name]![bad]}${why}`);
    assert.ok(output.includes(`${sha(host)}  ${name}`), `${name}: the guest sees other bytes than the host after dropping caches${why}`);
  }
}
