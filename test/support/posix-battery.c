/*
 * Test support: the POSIX battery. One static C program that exercises a
 * directory the way Linux programs do and prints one deterministic line per
 * check: "<check-name> ok <observed data>" or "<check-name> <ERRNO> at=<step>".
 *
 * The same binary runs on a native directory (the oracle), through our
 * /dev/fuse mount, and inside a busybox-only Linux guest over virtio-fs, so
 * it must be built with -static and must never print anything that may
 * legitimately differ between file systems: no timestamps (only "changed" /
 * "same" against a value we set), no inode numbers (only "same inode as"),
 * no st_dev, no st_blocks, no exact hole offsets (only what POSIX lets a
 * careful test demand; the exact offsets go on their own "sparse.exact" line
 * so a test can allow that one line to differ for a backend without holes).
 *
 * Usage: posix-battery [options] DIR
 *   --skip-xattr           print "xattr skipped" instead of the xattr checks
 *   --nonroot-uid N        uid/gid for the permission checks (default 65534)
 *   --skip-nonroot         print "perm skipped" instead of the permission checks
 *   --as-uid N             hand DIR to uid/gid N and run every check as that
 *                          user (no groups): the non-root view of the battery
 *   --readdir-count N      entries in the big readdir check (default 10000)
 *   --only P1,P2,...       run only checks whose name starts with one of the Pi
 *   --timing               print each check's duration to stderr
 *   --populate-readonly    fill DIR with the fixture --expect-readonly needs
 *   --expect-readonly      DIR (populated earlier) is on a read-only mount:
 *                          every mutating call must fail with EROFS
 * DIR must be empty (except with --expect-readonly). Exit status 0 when every
 * check ran (whatever their results), 2 on usage or set-up errors.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

/* ---------- options ---------- */
static int opt_timing, opt_skip_xattr, opt_skip_nonroot, opt_populate_ro, opt_expect_ro;
static int opt_nonroot_uid = 65534;
static int opt_as_uid = -1;
static int opt_readdir_count = 10000;
static const char *opt_only;

/* ---------- output ---------- */
static const char *ename(int e) {
  const char *n = strerrorname_np(e);
  return n ? n : "EUNKNOWN";
}

static void emit(const char *name, const char *fmt, ...) {
  va_list ap;
  printf("%s ", name);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

/* The result of a call that is expected to fail: "ok" when it did not. */
static void emit_rc(const char *name, long rc) {
  if (rc < 0) emit(name, "%s", ename(errno));
  else emit(name, "ok");
}

/* Inside a check function whose name is N: report errno at a step and return. */
#define FAIL(step)                                      \
  do {                                                  \
    emit(N, "%s at=%s", ename(errno), step);            \
    return;                                             \
  } while (0)
#define TRY(expr, step) \
  do {                  \
    if ((expr) < 0) FAIL(step); \
  } while (0)
/* A logical expectation inside a check failed (no errno involved). */
#define BAD(fmt, ...)                                   \
  do {                                                  \
    emit(N, "MISMATCH " fmt, ##__VA_ARGS__);            \
    return;                                             \
  } while (0)

/* ---------- helpers ---------- */
#define MiB (1 << 20)
static uint64_t fnv(const void *p, size_t n, uint64_t h) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}
#define FNV0 0xcbf29ce484222325ULL

static void fill(void *p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = (unsigned char)x;
  }
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    fprintf(stderr, "posix-battery: out of memory\n");
    exit(2);
  }
  return p;
}

/* Full write/read loops: a short count is legal, so loop like real programs. */
static ssize_t write_all(int fd, const void *p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = write(fd, (const char *)p + done, n - done);
    if (r < 0) return -1;
    if (r == 0) break;
    done += r;
  }
  return done;
}
static ssize_t pread_all(int fd, void *p, size_t n, off_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, (char *)p + done, n - done, off + done);
    if (r < 0) return -1;
    if (r == 0) break;
    done += r;
  }
  return done;
}

static int put_file(const char *path, const void *p, size_t n, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0) return -1;
  if (write_all(fd, p, n) != (ssize_t)n) {
    int e = errno;
    close(fd);
    errno = e ? e : EIO;
    return -1;
  }
  return close(fd);
}
static int put_str(const char *path, const char *s) { return put_file(path, s, strlen(s), 0644); }

/* Reads a whole (small) file into buf; returns length or -1. */
static ssize_t get_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = pread_all(fd, buf, cap, 0);
  int e = errno;
  close(fd);
  errno = e;
  return n;
}

/* Hash of a whole file's content (and its length through *len). */
static int hash_file(const char *path, uint64_t *h, off_t *len) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  static char buf[1 << 17];
  uint64_t x = FNV0;
  off_t total = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    if (r == 0) break;
    x = fnv(buf, r, x);
    total += r;
  }
  close(fd);
  *h = x;
  if (len) *len = total;
  return 0;
}

static int all_zero(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

static char *ftype(mode_t m) {
  if (S_ISREG(m)) return "reg";
  if (S_ISDIR(m)) return "dir";
  if (S_ISLNK(m)) return "lnk";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISSOCK(m)) return "sock";
  if (S_ISCHR(m)) return "chr";
  if (S_ISBLK(m)) return "blk";
  return "?";
}

static int renameat2_(const char *a, const char *b, unsigned flags) {
  return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
}

/* Names in a directory (without . and ..), sorted, joined by '/': hashed. */
static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

struct listing {
  char **names;
  int n, cap;
  int dots; /* how many of "." and ".." were seen */
};
static void listing_add(struct listing *l, const char *name) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->names = realloc(l->names, l->cap * sizeof(char *));
    if (!l->names) exit(2);
  }
  l->names[l->n++] = strdup(name);
}
static void listing_free(struct listing *l) {
  for (int i = 0; i < l->n; i++) free(l->names[i]);
  free(l->names);
  memset(l, 0, sizeof *l);
}
static int list_dir(const char *path, struct listing *l) {
  memset(l, 0, sizeof *l);
  DIR *d = opendir(path);
  if (!d) return -1;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
      l->dots++;
      continue;
    }
    listing_add(l, e->d_name);
  }
  int err = errno;
  closedir(d);
  if (err) {
    errno = err;
    return -1;
  }
  qsort(l->names, l->n, sizeof(char *), cmpstr);
  return 0;
}
static uint64_t listing_hash(struct listing *l) {
  uint64_t h = FNV0;
  for (int i = 0; i < l->n; i++) h = fnv(l->names[i], strlen(l->names[i]) + 1, h);
  return h;
}
static int listing_dups(struct listing *l) {
  int d = 0;
  for (int i = 1; i < l->n; i++)
    if (!strcmp(l->names[i], l->names[i - 1])) d++;
  return d;
}
/* A printable form of a short sorted listing (names are ASCII in callers). */
static void listing_join(struct listing *l, char *out, size_t cap) {
  out[0] = 0;
  for (int i = 0; i < l->n; i++) {
    if (i) strncat(out, ",", cap - strlen(out) - 1);
    strncat(out, l->names[i], cap - strlen(out) - 1);
  }
}

static int mkdirs(const char *p) { return mkdir(p, 0755); }

/* Fixed timestamps we set and then compare against (never printed "now"). */
static const struct timespec T_OLD = {1000000000, 123456789};  /* 2001-09-09 */
static const struct timespec T_OLD2 = {1200000000, 500000000}; /* 2008-01-10 */

static int set_times(const char *p, struct timespec a, struct timespec m, int flags) {
  struct timespec ts[2] = {a, m};
  return utimensat(AT_FDCWD, p, ts, flags);
}
static int ts_eq(struct timespec a, struct timespec b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }
static const char *chg(struct timespec now, struct timespec was) { return ts_eq(now, was) ? "same" : "changed"; }

/* ====================================================================== */
/* statfs                                                                  */
/* ====================================================================== */
static void c_statfs(const char *N) {
  struct statfs s;
  TRY(statfs(".", &s), "statfs");
  int sane = s.f_bsize > 0 && s.f_blocks >= s.f_bfree && s.f_bfree >= s.f_bavail;
  emit(N, "ok namelen=%ld sane=%d", (long)s.f_namelen, sane);
}

/* ====================================================================== */
/* create / read / write / append / truncate                               */
/* ====================================================================== */
static void c_rw_basic(const char *N) {
  const char *msg = "hello, world\n";
  int fd = open("rw_basic", O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  ssize_t w = write(fd, msg, strlen(msg));
  if (w < 0) FAIL("write");
  TRY(close(fd), "close");
  struct stat st;
  TRY(stat("rw_basic", &st), "stat");
  char buf[64];
  ssize_t r = get_file("rw_basic", buf, sizeof buf);
  if (r < 0) FAIL("read");
  emit(N, "ok wrote=%zd size=%lld mode=%04o type=%s nlink=%lu content=%s", w, (long long)st.st_size,
       st.st_mode & 07777, ftype(st.st_mode), (unsigned long)st.st_nlink,
       (r == (ssize_t)strlen(msg) && !memcmp(buf, msg, r)) ? "match" : "differs");
}

static void c_rw_large(const char *N) {
  const size_t sz = 8 << 20, chunk = 1 << 20;
  char *src = xmalloc(sz), *dst = xmalloc(sz);
  fill(src, sz, 42);
  int fd = open("rw_large", O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  for (size_t off = 0; off < sz; off += chunk)
    if (pwrite(fd, src + off, chunk, off) != (ssize_t)chunk) FAIL("pwrite");
  TRY(fsync(fd), "fsync");
  TRY(close(fd), "close");
  fd = open("rw_large", O_RDONLY);
  if (fd < 0) FAIL("reopen");
  /* Odd-sized sequential reads cross every page and request boundary. */
  size_t got = 0;
  for (;;) {
    size_t want = (got / 4099) % 2 ? 131072 : 4099;
    if (got + want > sz) want = sz - got;
    if (want == 0) break;
    ssize_t r = read(fd, dst + got, want);
    if (r < 0) FAIL("read");
    if (r == 0) break;
    got += r;
  }
  char extra;
  ssize_t eof = read(fd, &extra, 1);
  close(fd);
  emit(N, "ok size=%zu eof_read=%zd match=%d hash=%016" PRIx64, got, eof, got == sz && !memcmp(src, dst, sz),
       fnv(dst, got, FNV0));
  free(src);
  free(dst);
}

/* One write() and one read() far larger than FUSE's max_write: the kernel splits them. */
static void c_rw_big_single(const char *N) {
  const size_t len = 3 * MiB + 5;
  char *src = xmalloc(len), *dst = xmalloc(len);
  fill(src, len, 43);
  int fd = open("rw_big1", O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  ssize_t w = write(fd, src, len);
  if (w < 0) FAIL("write");
  ssize_t r = pread(fd, dst, len, 0);
  if (r < 0) FAIL("pread");
  close(fd);
  emit(N, "ok wrote=%zd read=%zd match=%d", w, r, r == (ssize_t)len && !memcmp(src, dst, len));
  free(src);
  free(dst);
}

/* O_DIRECT with page-aligned buffers, offsets and lengths. */
static void c_rw_o_direct(const char *N) {
  const size_t len = 64 * 1024;
  void *src, *dst;
  if (posix_memalign(&src, 4096, len) || posix_memalign(&dst, 4096, len)) BAD("posix_memalign");
  fill(src, len, 44);
  memset(dst, 0, len);
  int fd = open("rw_direct", O_RDWR | O_CREAT | O_EXCL | O_DIRECT, 0644);
  if (fd < 0) FAIL("create");
  ssize_t w = pwrite(fd, src, len, 0);
  if (w < 0) FAIL("pwrite");
  ssize_t r = pread(fd, dst, len, 0);
  if (r < 0) FAIL("pread");
  close(fd);
  uint64_t h;
  off_t l;
  TRY(hash_file("rw_direct", &h, &l), "hash_buffered");
  emit(N, "ok wrote=%zd read=%zd match=%d buffered_view=%s", w, r, r == (ssize_t)len && !memcmp(src, dst, len),
       h == fnv(src, len, FNV0) ? "match" : "differs");
  free(src);
  free(dst);
}

/* 64-bit offsets end to end: past 2^31, 2^32 and at 1 TiB (sparse, so cheap). */
static void c_rw_large_offsets(const char *N) {
  int fd = open("rw_off", O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  const off_t o1 = (5LL << 30) + 3, o2 = (1LL << 40) + 7;
  TRY(pwrite(fd, "five-gib", 8, o1), "pwrite_5g");
  TRY(pwrite(fd, "one-tib", 7, o2), "pwrite_1t");
  struct stat st;
  TRY(fstat(fd, &st), "fstat");
  char a[9] = {0}, b[8] = {0}, z[16];
  TRY(pread(fd, a, 8, o1), "pread_5g");
  TRY(pread(fd, b, 7, o2), "pread_1t");
  ssize_t zr = pread(fd, z, sizeof z, 3LL << 30);
  off_t d = lseek(fd, 4LL << 30, SEEK_DATA);
  int de = d < 0 ? errno : 0;
  TRY(ftruncate(fd, (3LL << 30) + 1), "shrink");
  struct stat st2;
  TRY(fstat(fd, &st2), "fstat2");
  off_t end = lseek(fd, 0, SEEK_END);
  close(fd);
  /* A 3 GiB sparse file is no use to anyone comparing trees afterwards. */
  TRY(unlink("rw_off"), "unlink");
  /* SEEK_DATA from 4 GiB lands at the 5 GiB data, or at 4 GiB if holes read as data. */
  emit(N, "ok size=%lld at5g=%s at1t=%s hole_read=%zd,%s seek_data=%s shrunk=%lld seek_end=%lld", (long long)st.st_size,
       a, b, zr, all_zero(z, sizeof z) ? "zero" : "nonzero",
       de ? ename(de) : (d == (4LL << 30) || (d >= (5LL << 30) - 4096 && d <= o1)) ? "valid" : "INVALID",
       (long long)st2.st_size, (long long)end);
}

static void c_rw_pread_pwrite(const char *N) {
  char buf[70000], back[70000];
  fill(buf, sizeof buf, 7);
  int fd = open("rw_pp", O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  TRY(pwrite(fd, buf, 65536, 0), "pwrite0");
  /* Overwrite a range that straddles two page boundaries. */
  TRY(pwrite(fd, buf + 1000, 8195, 4095), "pwrite_mid");
  ssize_t in = pread(fd, back, 1000, 4095 + 8195 - 500);       /* inside */
  ssize_t straddle = pread(fd, back, 1000, 65536 - 300);     /* short at EOF */
  ssize_t past = pread(fd, back, 1000, 65536 + 10);          /* past EOF */
  uint64_t h;
  off_t len;
  close(fd);
  TRY(hash_file("rw_pp", &h, &len), "hash");
  emit(N, "ok inside=%zd straddle=%zd past=%zd size=%lld hash=%016" PRIx64, in, straddle, past, (long long)len, h);
}

static void c_rw_write_past_eof(const char *N) {
  int fd = open("rw_gap", O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  TRY(pwrite(fd, "0123456789", 10, 100000), "pwrite");
  struct stat st;
  TRY(fstat(fd, &st), "fstat");
  static char b[100010];
  ssize_t r = pread_all(fd, b, sizeof b, 0);
  close(fd);
  emit(N, "ok size=%lld read=%zd gap_zero=%d tail=%.10s", (long long)st.st_size, r, all_zero(b, 100000), b + 100000);
}

static void c_rw_append(const char *N) {
  TRY(put_str("rw_app", "start\n"), "create");
  int fd = open("rw_app", O_WRONLY | O_APPEND);
  if (fd < 0) FAIL("open");
  TRY(write(fd, "one\n", 4), "write1");
  TRY(lseek(fd, 0, SEEK_SET), "lseek");
  TRY(write(fd, "two\n", 4), "write2");     /* still appends after lseek */
  TRY(pwrite(fd, "three\n", 6, 0), "pwrite"); /* Linux: pwrite on O_APPEND appends too */
  off_t pos = lseek(fd, 0, SEEK_CUR);
  close(fd);
  char b[64];
  ssize_t n = get_file("rw_app", b, sizeof b - 1);
  if (n < 0) FAIL("read");
  b[n] = 0;
  for (char *p = b; *p; p++)
    if (*p == '\n') *p = '|';
  emit(N, "ok pos=%lld content=%s", (long long)pos, b);
}

static void c_rw_truncate(const char *N) {
  char buf[10000];
  fill(buf, sizeof buf, 3);
  TRY(put_file("rw_tr", buf, sizeof buf, 0644), "create");
  int fd = open("rw_tr", O_RDWR);
  if (fd < 0) FAIL("open");
  TRY(ftruncate(fd, 4000), "shrink");
  struct stat s1, s2, s3, s4;
  TRY(fstat(fd, &s1), "fstat1");
  static char back[20000];
  ssize_t r1 = pread_all(fd, back, sizeof back, 0);
  int prefix_ok = r1 == 4000 && !memcmp(back, buf, 4000);
  TRY(ftruncate(fd, 20000), "grow");
  TRY(fstat(fd, &s2), "fstat2");
  ssize_t r2 = pread_all(fd, back, sizeof back, 0);
  int grow_ok = r2 == 20000 && !memcmp(back, buf, 4000) && all_zero(back + 4000, 16000);
  close(fd);
  TRY(truncate("rw_tr", 123), "truncate_path");
  TRY(stat("rw_tr", &s3), "stat3");
  fd = open("rw_tr", O_WRONLY | O_TRUNC);
  if (fd < 0) FAIL("o_trunc");
  TRY(fstat(fd, &s4), "fstat4");
  close(fd);
  /* ftruncate through a read-only fd and to a negative size are errors. */
  fd = open("rw_tr", O_RDONLY);
  if (fd < 0) FAIL("open_ro");
  int e_ro = ftruncate(fd, 10) < 0 ? errno : 0;
  close(fd);
  int e_neg = truncate("rw_tr", -1) < 0 ? errno : 0;
  emit(N, "ok shrunk=%lld prefix=%d grown=%lld grow_zero=%d path=%lld otrunc=%lld ro_fd=%s neg=%s",
       (long long)s1.st_size, prefix_ok, (long long)s2.st_size, grow_ok, (long long)s3.st_size,
       (long long)s4.st_size, e_ro ? ename(e_ro) : "ok", e_neg ? ename(e_neg) : "ok");
}

static void c_rw_unlink_open(const char *N) {
  TRY(put_str("rw_ul", "still here"), "create");
  int fd = open("rw_ul", O_RDWR);
  if (fd < 0) FAIL("open");
  TRY(unlink("rw_ul"), "unlink");
  struct stat st;
  int gone = stat("rw_ul", &st) < 0 ? errno : 0;
  TRY(pwrite(fd, "STILL", 5, 0), "pwrite");
  char b[32] = {0};
  ssize_t r = pread(fd, b, sizeof b - 1, 0);
  if (r < 0) FAIL("pread");
  TRY(fstat(fd, &st), "fstat");
  close(fd);
  emit(N, "ok stat_after=%s content=%s fstat_size=%lld fstat_nlink=%lu", gone ? ename(gone) : "ok", b,
       (long long)st.st_size, (unsigned long)st.st_nlink);
}

static void c_rw_rename_open(const char *N) {
  TRY(mkdirs("rw_ro_a"), "mkdir_a");
  TRY(mkdirs("rw_ro_b"), "mkdir_b");
  TRY(put_str("rw_ro_a/f", "moving"), "create");
  int fd = open("rw_ro_a/f", O_RDWR);
  if (fd < 0) FAIL("open");
  TRY(rename("rw_ro_a/f", "rw_ro_b/g"), "rename");
  TRY(pwrite(fd, "MOVING", 6, 0), "pwrite");
  close(fd);
  char b[32] = {0};
  if (get_file("rw_ro_b/g", b, sizeof b - 1) < 0) FAIL("read");
  emit(N, "ok content=%s", b);
}

/* ====================================================================== */
/* sparse files and holes                                                  */
/* ====================================================================== */
static void c_sparse(const char *N) {
  char data[4096];
  fill(data, sizeof data, 9);
  int fd = open("sparse", O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  TRY(pwrite(fd, data, 4096, 0), "pwrite0");
  TRY(pwrite(fd, data, 4096, 4 * MiB), "pwrite4m");
  const off_t size = 4 * MiB + 4096;
  struct stat st;
  TRY(fstat(fd, &st), "fstat");
  /*
   * What POSIX lets us demand: SEEK_DATA lands on data at or after the
   * offset; SEEK_HOLE lands on a hole at or after it, EOF being a hole; both
   * fail with ENXIO at or past EOF. A file system that tracks no holes may
   * report the whole file as data, so only these bounds are checked here.
   */
  off_t d0 = lseek(fd, 0, SEEK_DATA);
  int d0e = d0 < 0 ? errno : 0;
  off_t h0 = lseek(fd, 0, SEEK_HOLE);
  int h0e = h0 < 0 ? errno : 0;
  off_t dm = lseek(fd, 1 * MiB, SEEK_DATA);
  int dme = dm < 0 ? errno : 0;
  off_t he = lseek(fd, 4 * MiB, SEEK_HOLE);
  int hee = he < 0 ? errno : 0;
  off_t dx = lseek(fd, size, SEEK_DATA);
  int dxe = dx < 0 ? errno : 0;
  off_t hx = lseek(fd, size + 10, SEEK_HOLE);
  int hxe = hx < 0 ? errno : 0;
  static char mid[MiB];
  ssize_t r = pread_all(fd, mid, MiB, 1 * MiB);
  char tail[4096];
  ssize_t rt = pread_all(fd, tail, 4096, 4 * MiB);
  close(fd);
  emit(N, "ok size=%lld data0=%s hole0=%s data_mid=%s hole_end=%s data_eof=%s hole_eof=%s mid_zero=%d tail=%s",
       (long long)st.st_size, d0e ? ename(d0e) : (d0 == 0 ? "valid" : "INVALID"),
       h0e ? ename(h0e) : (h0 >= 4096 && h0 <= size ? "valid" : "INVALID"),
       dme ? ename(dme) : (dm >= 1 * MiB && dm <= 4 * MiB ? "valid" : "INVALID"),
       hee ? ename(hee) : (he == size ? "valid" : "INVALID"), dxe ? ename(dxe) : "found",
       hxe ? ename(hxe) : "found", r == MiB && all_zero(mid, MiB),
       rt == 4096 && !memcmp(tail, data, 4096) ? "match" : "differs");
}

/* Exact hole offsets: what a hole-tracking file system (ext4, tmpfs) reports. */
static void c_sparse_exact(const char *N) {
  int fd = open("sparse", O_RDONLY);
  if (fd < 0) FAIL("open");
  off_t h0 = lseek(fd, 0, SEEK_HOLE);
  off_t dm = lseek(fd, 1 * MiB, SEEK_DATA);
  close(fd);
  emit(N, "ok hole0=%lld data_mid=%lld", (long long)h0, (long long)dm);
}

static void c_sparse_all_hole(const char *N) {
  int fd = open("sparse_empty", O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  TRY(ftruncate(fd, MiB), "ftruncate");
  off_t d = lseek(fd, 0, SEEK_DATA);
  int de = d < 0 ? errno : 0;
  off_t h = lseek(fd, 0, SEEK_HOLE);
  int he = h < 0 ? errno : 0;
  close(fd);
  /* No data at all: ENXIO, or offset 0 if the fs calls everything data. */
  emit(N, "ok data0=%s hole0=%s", de == ENXIO || (!de && d == 0) ? "valid" : (de ? ename(de) : "INVALID"),
       he ? ename(he) : (h == 0 || h == MiB ? "valid" : "INVALID"));
}

/* ====================================================================== */
/* fallocate                                                               */
/* ====================================================================== */
static void c_falloc_mode0(const char *N) {
  int fd = open("fa0", O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  TRY(fallocate(fd, 0, 0, MiB), "fallocate");
  struct stat st;
  TRY(fstat(fd, &st), "fstat");
  static char b[MiB];
  ssize_t r = pread_all(fd, b, MiB, 0);
  close(fd);
  emit(N, "ok size=%lld read=%zd zero=%d", (long long)st.st_size, r, all_zero(b, MiB));
}

static void c_falloc_keep_size(const char *N) {
  char d[4096];
  fill(d, sizeof d, 11);
  TRY(put_file("fa_keep", d, sizeof d, 0644), "create");
  int fd = open("fa_keep", O_RDWR);
  if (fd < 0) FAIL("open");
  TRY(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, MiB), "fallocate");
  struct stat st;
  TRY(fstat(fd, &st), "fstat");
  close(fd);
  uint64_t h;
  off_t len;
  TRY(hash_file("fa_keep", &h, &len), "hash");
  emit(N, "ok size=%lld content=%s", (long long)st.st_size, h == fnv(d, sizeof d, FNV0) ? "same" : "changed");
}

static void c_falloc_punch(const char *N) {
  static char d[65536], b[65536];
  fill(d, sizeof d, 12);
  TRY(put_file("fa_punch", d, sizeof d, 0644), "create");
  int fd = open("fa_punch", O_RDWR);
  if (fd < 0) FAIL("open");
  int nokeep = fallocate(fd, FALLOC_FL_PUNCH_HOLE, 16384, 16384) < 0 ? errno : 0;
  TRY(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 16384, 16384), "punch");
  struct stat st;
  TRY(fstat(fd, &st), "fstat");
  ssize_t r = pread_all(fd, b, sizeof b, 0);
  close(fd);
  int ok = r == 65536 && !memcmp(b, d, 16384) && all_zero(b + 16384, 16384) && !memcmp(b + 32768, d + 32768, 32768);
  emit(N, "ok size=%lld logical=%s punch_without_keep=%s", (long long)st.st_size, ok ? "match" : "differs",
       nokeep ? ename(nokeep) : "ok");
}

static void c_falloc_zero_range(const char *N) {
  static char d[65536], b[65536];
  fill(d, sizeof d, 13);
  TRY(put_file("fa_zero", d, sizeof d, 0644), "create");
  int fd = open("fa_zero", O_RDWR);
  if (fd < 0) FAIL("open");
  TRY(fallocate(fd, FALLOC_FL_ZERO_RANGE, 1000, 10000), "zero_range");
  struct stat st;
  TRY(fstat(fd, &st), "fstat");
  ssize_t r = pread_all(fd, b, sizeof b, 0);
  close(fd);
  int ok = r == 65536 && !memcmp(b, d, 1000) && all_zero(b + 1000, 10000) && !memcmp(b + 11000, d + 11000, 65536 - 11000);
  emit(N, "ok size=%lld logical=%s", (long long)st.st_size, ok ? "match" : "differs");
}

/* ====================================================================== */
/* rename                                                                  */
/* ====================================================================== */
static void content_of(const char *p, char *out, size_t cap) {
  ssize_t n = get_file(p, out, cap - 1);
  if (n < 0) snprintf(out, cap, "%s", ename(errno));
  else out[n] = 0;
}
static nlink_t nlink_of(const char *p) {
  struct stat st;
  return stat(p, &st) < 0 ? 0 : st.st_nlink;
}

static void c_rename_across(const char *N) {
  TRY(mkdirs("rn1"), "mkdir1");
  TRY(mkdirs("rn2"), "mkdir2");
  TRY(put_str("rn1/a", "A"), "create");
  TRY(rename("rn1/a", "rn2/b"), "rename");
  char c[16];
  content_of("rn2/b", c, sizeof c);
  struct stat st;
  int src = stat("rn1/a", &st) < 0 ? errno : 0;
  emit(N, "ok src=%s dst=%s", src ? ename(src) : "exists", c);
}

static void c_rename_overwrite(const char *N) {
  TRY(mkdirs("rno1"), "mkdir1");
  TRY(mkdirs("rno2"), "mkdir2");
  TRY(put_str("rno1/x", "X"), "create_x");
  TRY(put_str("rno2/y", "Y"), "create_y");
  TRY(rename("rno1/x", "rno2/y"), "rename");
  char c[16];
  content_of("rno2/y", c, sizeof c);
  struct listing l1, l2;
  TRY(list_dir("rno1", &l1), "list1");
  TRY(list_dir("rno2", &l2), "list2");
  emit(N, "ok dst=%s n1=%d n2=%d", c, l1.n, l2.n);
  listing_free(&l1);
  listing_free(&l2);
}

static void c_rename_noreplace(const char *N) {
  TRY(mkdirs("rnn1"), "mkdir1");
  TRY(mkdirs("rnn2"), "mkdir2");
  TRY(put_str("rnn1/a", "A"), "create_a");
  TRY(put_str("rnn2/b", "B"), "create_b");
  int e1 = renameat2_("rnn1/a", "rnn2/b", RENAME_NOREPLACE) < 0 ? errno : 0;
  char ca[16], cb[16];
  content_of("rnn1/a", ca, sizeof ca);
  content_of("rnn2/b", cb, sizeof cb);
  int e2 = renameat2_("rnn1/a", "rnn2/c", RENAME_NOREPLACE) < 0 ? errno : 0;
  char cc[16], ca2[16];
  content_of("rnn2/c", cc, sizeof cc);
  content_of("rnn1/a", ca2, sizeof ca2);
  emit(N, "ok onto_existing=%s a=%s b=%s onto_new=%s c=%s a_after=%s", e1 ? ename(e1) : "ok", ca, cb,
       e2 ? ename(e2) : "ok", cc, ca2);
}

static void c_rename_exchange(const char *N) {
  TRY(mkdirs("rnx1"), "mkdir1");
  TRY(mkdirs("rnx2"), "mkdir2");
  TRY(put_str("rnx1/f", "F"), "create_f");
  TRY(mkdirs("rnx2/sub"), "mkdir_sub");
  TRY(put_str("rnx2/sub/inner", "I"), "create_inner");
  nlink_t n1a = nlink_of("rnx1"), n2a = nlink_of("rnx2");
  TRY(renameat2_("rnx1/f", "rnx2/sub", RENAME_EXCHANGE), "exchange");
  struct stat s1, s2;
  TRY(lstat("rnx1/f", &s1), "lstat1");
  TRY(lstat("rnx2/sub", &s2), "lstat2");
  char ci[16], cf[16];
  content_of("rnx1/f/inner", ci, sizeof ci);
  content_of("rnx2/sub", cf, sizeof cf);
  nlink_t n1b = nlink_of("rnx1"), n2b = nlink_of("rnx2");
  /* Exchange with a missing side and with both flags at once must fail. */
  int emiss = renameat2_("rnx1/f", "rnx2/none", RENAME_EXCHANGE) < 0 ? errno : 0;
  int eboth = renameat2_("rnx1/f", "rnx2/sub", RENAME_EXCHANGE | RENAME_NOREPLACE) < 0 ? errno : 0;
  emit(N, "ok f=%s sub=%s f_inner=%s sub_content=%s parent_nlink=%lu,%lu->%lu,%lu missing=%s both_flags=%s",
       ftype(s1.st_mode), ftype(s2.st_mode), ci, cf, (unsigned long)n1a, (unsigned long)n2a, (unsigned long)n1b,
       (unsigned long)n2b, emiss ? ename(emiss) : "ok", eboth ? ename(eboth) : "ok");
}

/* RENAME_WHITEOUT (overlayfs upper layers use it): the source becomes a 0:0 char device. */
static void c_rename_whiteout(const char *N) {
  TRY(mkdirs("rnw"), "mkdir");
  TRY(put_str("rnw/a", "A"), "create");
  TRY(renameat2_("rnw/a", "rnw/b", RENAME_WHITEOUT), "whiteout");
  struct stat w;
  TRY(lstat("rnw/a", &w), "lstat_whiteout");
  char c[16];
  content_of("rnw/b", c, sizeof c);
  int e_ex = renameat2_("rnw/b", "rnw/a", RENAME_WHITEOUT | RENAME_EXCHANGE) < 0 ? errno : 0;
  /* Like any new node, the whiteout belongs to the caller. */
  emit(N, "ok whiteout=%s,%u:%u,%04o owner=%s dst=%s with_exchange=%s", ftype(w.st_mode), major(w.st_rdev),
       minor(w.st_rdev), w.st_mode & 07777, w.st_uid == geteuid() && w.st_gid == getegid() ? "caller" : "other", c,
       e_ex ? ename(e_ex) : "ok");
}

static void c_rename_dir_across(const char *N) {
  TRY(mkdirs("rnd1"), "mkdir1");
  TRY(mkdirs("rnd2"), "mkdir2");
  TRY(mkdirs("rnd1/d"), "mkdir_d");
  TRY(mkdirs("rnd1/d/deeper"), "mkdir_deeper");
  TRY(put_str("rnd1/d/file", "in d"), "create");
  nlink_t a1 = nlink_of("rnd1"), a2 = nlink_of("rnd2");
  TRY(rename("rnd1/d", "rnd2/d"), "rename");
  nlink_t b1 = nlink_of("rnd1"), b2 = nlink_of("rnd2");
  char c[16];
  content_of("rnd2/d/file", c, sizeof c);
  /* ".." of the moved dir must now be the new parent. */
  struct stat up, p2;
  TRY(stat("rnd2/d/..", &up), "stat_dotdot");
  TRY(stat("rnd2", &p2), "stat_parent");
  struct listing l;
  TRY(list_dir("rnd2/d", &l), "list");
  char names[128];
  listing_join(&l, names, sizeof names);
  listing_free(&l);
  emit(N, "ok parent_nlink=%lu,%lu->%lu,%lu content=%s dotdot_is_new_parent=%d entries=%s", (unsigned long)a1,
       (unsigned long)a2, (unsigned long)b1, (unsigned long)b2, c, up.st_ino == p2.st_ino && up.st_dev == p2.st_dev,
       names);
}

static void c_rename_dirs(const char *N) {
  TRY(mkdirs("rdd"), "mkdir");
  TRY(mkdirs("rdd/src"), "mkdir_src");
  TRY(mkdirs("rdd/empty"), "mkdir_empty");
  TRY(mkdirs("rdd/full"), "mkdir_full");
  TRY(put_str("rdd/full/x", "x"), "create_x");
  TRY(put_str("rdd/file", "file"), "create_file");
  TRY(mkdirs("rdd/src/child"), "mkdir_child");
  int e_full = rename("rdd/src", "rdd/full") < 0 ? errno : 0;
  int e_file_onto_dir = rename("rdd/file", "rdd/empty") < 0 ? errno : 0;
  int e_dir_onto_file = rename("rdd/src", "rdd/file") < 0 ? errno : 0;
  int e_into_self = rename("rdd/src", "rdd/src/child/x") < 0 ? errno : 0;
  int e_empty = rename("rdd/src", "rdd/empty") < 0 ? errno : 0;
  struct stat st;
  int child = stat("rdd/empty/child", &st) < 0 ? errno : 0;
  emit(N, "ok onto_nonempty=%s file_onto_dir=%s dir_onto_file=%s into_own_subdir=%s onto_empty=%s moved_child=%s",
       e_full ? ename(e_full) : "ok", e_file_onto_dir ? ename(e_file_onto_dir) : "ok",
       e_dir_onto_file ? ename(e_dir_onto_file) : "ok", e_into_self ? ename(e_into_self) : "ok",
       e_empty ? ename(e_empty) : "ok", child ? ename(child) : "exists");
}

static void c_rename_same_inode(const char *N) {
  TRY(put_str("rsi_a", "same"), "create");
  TRY(link("rsi_a", "rsi_b"), "link");
  TRY(rename("rsi_a", "rsi_b"), "rename");
  struct stat a, b;
  int ea = stat("rsi_a", &a) < 0 ? errno : 0;
  int eb = stat("rsi_b", &b) < 0 ? errno : 0;
  /* POSIX: renaming onto another link of the same file does nothing. */
  emit(N, "ok a=%s b=%s nlink=%lu", ea ? ename(ea) : "exists", eb ? ename(eb) : "exists",
       eb ? 0ul : (unsigned long)b.st_nlink);
}

/* ====================================================================== */
/* hard links                                                              */
/* ====================================================================== */
static void c_link(const char *N) {
  TRY(mkdirs("ln"), "mkdir");
  TRY(mkdirs("ln/other"), "mkdir_other");
  TRY(put_str("ln/a", "first"), "create");
  TRY(link("ln/a", "ln/other/b"), "link");
  struct stat a, b;
  TRY(stat("ln/a", &a), "stat_a");
  TRY(stat("ln/other/b", &b), "stat_b");
  int fd = open("ln/other/b", O_WRONLY | O_TRUNC);
  if (fd < 0) FAIL("open_b");
  TRY(write(fd, "second", 6), "write_b");
  close(fd);
  char ca[16];
  content_of("ln/a", ca, sizeof ca);
  TRY(unlink("ln/a"), "unlink_a");
  struct stat b2;
  TRY(stat("ln/other/b", &b2), "stat_b2");
  char cb[16];
  content_of("ln/other/b", cb, sizeof cb);
  int e_dir = link("ln/other", "ln/dirlink") < 0 ? errno : 0;
  int e_exist = link("ln/other/b", "ln/other") < 0 ? errno : 0;
  int e_miss = link("ln/missing", "ln/x") < 0 ? errno : 0;
  emit(N, "ok nlink=%lu,%lu same_inode=%d a_after_write_b=%s nlink_after_unlink=%lu b=%s dir=%s existing=%s missing=%s",
       (unsigned long)a.st_nlink, (unsigned long)b.st_nlink, a.st_ino == b.st_ino, ca, (unsigned long)b2.st_nlink, cb,
       e_dir ? ename(e_dir) : "ok", e_exist ? ename(e_exist) : "ok", e_miss ? ename(e_miss) : "ok");
}

/* ====================================================================== */
/* symlinks                                                                */
/* ====================================================================== */
static void c_symlink_basic(const char *N) {
  TRY(mkdirs("sl"), "mkdir");
  TRY(put_str("sl/target-file", "pointed at"), "create");
  TRY(symlink("target-file", "sl/l"), "symlink");
  char b[64];
  ssize_t n = readlink("sl/l", b, sizeof b);
  if (n < 0) FAIL("readlink");
  b[n] = 0;
  char small[4];
  ssize_t ns = readlink("sl/l", small, sizeof small); /* truncates silently */
  struct stat ls, s;
  TRY(lstat("sl/l", &ls), "lstat");
  TRY(stat("sl/l", &s), "stat");
  char c[32];
  content_of("sl/l", c, sizeof c);
  int e_nofollow = open("sl/l", O_RDONLY | O_NOFOLLOW) < 0 ? errno : 0;
  int e_notlink = readlink("sl/target-file", b + 40, 8) < 0 ? errno : 0;
  emit(N, "ok readlink=%s len=%zd small=%zd lstat=%s,%lld,%04o stat=%s,%lld content=%s nofollow=%s readlink_reg=%s", b, n,
       ns, ftype(ls.st_mode), (long long)ls.st_size, ls.st_mode & 07777, ftype(s.st_mode), (long long)s.st_size, c,
       e_nofollow ? ename(e_nofollow) : "ok", e_notlink ? ename(e_notlink) : "ok");
}

static void c_symlink_dangling(const char *N) {
  TRY(mkdirs("sld"), "mkdir");
  TRY(symlink("nowhere", "sld/l"), "symlink");
  struct stat st;
  int e_stat = stat("sld/l", &st) < 0 ? errno : 0;
  int e_lstat = lstat("sld/l", &st) < 0 ? errno : 0;
  int e_open = open("sld/l", O_RDONLY) < 0 ? errno : 0;
  /* Creating through a dangling symlink creates its target. */
  int fd = open("sld/l", O_WRONLY | O_CREAT, 0644);
  int e_creat = fd < 0 ? errno : 0;
  if (fd >= 0) close(fd);
  int e_after = stat("sld/nowhere", &st) < 0 ? errno : 0;
  emit(N, "ok stat=%s lstat=%s open=%s creat_through=%s target_after=%s", e_stat ? ename(e_stat) : "ok",
       e_lstat ? ename(e_lstat) : "ok", e_open ? ename(e_open) : "ok", e_creat ? ename(e_creat) : "ok",
       e_after ? ename(e_after) : "exists");
}

static void c_symlink_loop_long(const char *N) {
  TRY(mkdirs("sll"), "mkdir");
  TRY(symlink("b", "sll/a"), "symlink_a");
  TRY(symlink("a", "sll/b"), "symlink_b");
  struct stat st;
  int e_loop = stat("sll/a", &st) < 0 ? errno : 0;
  char target[1001];
  for (int i = 0; i < 1000; i++) target[i] = (i % 10 == 9) ? '/' : 'a' + i % 26;
  target[1000] = 0;
  TRY(symlink(target, "sll/long"), "symlink_long");
  char back[2048];
  ssize_t n = readlink("sll/long", back, sizeof back);
  if (n < 0) FAIL("readlink_long");
  TRY(mkdirs("sll/dir"), "mkdir_dir");
  TRY(put_str("sll/dir/f", "via dir link"), "create");
  TRY(symlink("dir", "sll/dl"), "symlink_dir");
  TRY(mkdirs("sll/other"), "mkdir_other");
  TRY(symlink("../dir/f", "sll/other/up"), "symlink_up");
  char c1[32], c2[32];
  content_of("sll/dl/f", c1, sizeof c1);
  content_of("sll/other/up", c2, sizeof c2);
  emit(N, "ok loop=%s long_len=%zd long_match=%d through_dir_link=%s dotdot_link=%s", e_loop ? ename(e_loop) : "ok", n,
       n == 1000 && !memcmp(back, target, 1000), c1, c2);
}

/* ====================================================================== */
/* readdir                                                                 */
/* ====================================================================== */
static void c_readdir_small(const char *N) {
  TRY(mkdirs("rds"), "mkdir");
  TRY(put_str("rds/file", "f"), "create");
  TRY(mkdirs("rds/dir"), "mkdir_dir");
  TRY(symlink("file", "rds/link"), "symlink");
  TRY(mkfifo("rds/fifo", 0644), "mkfifo");
  DIR *d = opendir("rds");
  if (!d) FAIL("opendir");
  char items[8][64];
  int n = 0, dots = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
      dots++;
      continue;
    }
    if (n < 8) {
      const char *t = e->d_type == DT_REG ? "reg" : e->d_type == DT_DIR ? "dir" : e->d_type == DT_LNK ? "lnk"
                      : e->d_type == DT_FIFO ? "fifo" : e->d_type == DT_UNKNOWN ? "unknown" : "?";
      snprintf(items[n++], 64, "%.40s:%s", e->d_name, t);
    }
  }
  closedir(d);
  qsort(items, n, 64, (int (*)(const void *, const void *))strcmp);
  char out[512] = "";
  for (int i = 0; i < n; i++) {
    if (i) strcat(out, ",");
    strcat(out, items[i]);
  }
  emit(N, "ok dots=%d entries=%s", dots, out);
}

static void big_name(char *out, size_t cap, int i) {
  /* Names of varying length so entries straddle readdir buffer boundaries. */
  snprintf(out, cap, "e%05d-%.*s", i, i % 37, "abcdefghijklmnopqrstuvwxyz0123456789_");
}

static void c_readdir_big(const char *N) {
  TRY(mkdirs("rdb"), "mkdir");
  char p[128];
  for (int i = 0; i < opt_readdir_count; i++) {
    char nm[64];
    big_name(nm, sizeof nm, i);
    snprintf(p, sizeof p, "rdb/%s", nm);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) FAIL("create");
    close(fd);
  }
  struct listing l;
  TRY(list_dir("rdb", &l), "list");
  /* Expected set: the same names, sorted, hashed the same way. */
  struct listing want = {0};
  for (int i = 0; i < opt_readdir_count; i++) {
    char nm[64];
    big_name(nm, sizeof nm, i);
    listing_add(&want, nm);
  }
  qsort(want.names, want.n, sizeof(char *), cmpstr);
  int dups = listing_dups(&l);
  /* Count names from `want` missing in `l` (both sorted). */
  int missing = 0, extra = 0, i = 0, j = 0;
  while (i < want.n || j < l.n) {
    int c = i == want.n ? 1 : j == l.n ? -1 : strcmp(want.names[i], l.names[j]);
    if (c == 0) i++, j++;
    else if (c < 0) missing++, i++;
    else extra++, j++;
  }
  /* Second pass with rewinddir: the same number of entries again. */
  DIR *d = opendir("rdb");
  if (!d) FAIL("opendir");
  int first = 0, second = 0;
  while (readdir(d)) first++;
  rewinddir(d);
  while (readdir(d)) second++;
  closedir(d);
  struct stat st;
  TRY(stat("rdb", &st), "stat");
  emit(N, "ok count=%d dots=%d dups=%d missing=%d extra=%d hash=%016" PRIx64 " rewind=%s dir_nlink=%lu", l.n, l.dots,
       dups, missing, extra, listing_hash(&l), first == second ? "same" : "differs", (unsigned long)st.st_nlink);
  listing_free(&l);
  listing_free(&want);
}

/*
 * Attributes that arrive with a listing (FUSE READDIRPLUS fills the kernel's
 * caches): stat right after readdir must show each entry's own size, mode,
 * type and link count, and d_type must agree with it.
 */
static void c_readdir_plus(const char *N) {
  const int n = 300;
  TRY(mkdirs("rdp"), "mkdir");
  char p[300], body[400];
  memset(body, 'x', sizeof body);
  for (int i = 0; i < n; i++) {
    snprintf(p, sizeof p, "rdp/p%03d", i);
    if (i % 7 == 0) {
      TRY(mkdir(p, 0700 | (i % 2 ? 050 : 0)), "mkdir_sub");
    } else if (i % 11 == 0) {
      TRY(symlink(i % 2 ? "p001" : "p002-not-there", p), "symlink");
    } else {
      TRY(put_file(p, body, i, 0644), "create");
      TRY(chmod(p, 0400 + (i % 64)), "chmod");
      if (i % 13 == 0) {
        char q[64];
        snprintf(q, sizeof q, "rdp/p%03d.hard", i);
        TRY(link(p, q), "link");
      }
    }
  }
  /* Forget what creating them taught the kernel, so the listing teaches it again. */
  sync();
  int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (dc >= 0) {
    if (write(dc, "2", 1) < 0) { /* not root (--as-uid): the kernel keeps its caches */ }
    close(dc);
  }
  DIR *d = opendir("rdp");
  if (!d) FAIL("opendir");
  struct dirent *e;
  int seen = 0, bad = 0, dtype_bad = 0;
  while ((e = readdir(d))) {
    int i;
    if (sscanf(e->d_name, "p%03d", &i) != 1) continue;
    seen++;
    snprintf(p, sizeof p, "rdp/%s", e->d_name);
    struct stat st;
    if (lstat(p, &st) < 0) {
      bad++;
      continue;
    }
    int hard = strstr(e->d_name, ".hard") != NULL;
    if (i % 7 == 0) bad += !(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == (0700 | (i % 2 ? 050 : 0)) && st.st_nlink == 2);
    else if (i % 11 == 0) bad += !(S_ISLNK(st.st_mode) && st.st_size == (i % 2 ? 4 : 14));
    else
      bad += !(S_ISREG(st.st_mode) && st.st_size == i && (st.st_mode & 07777) == (mode_t)(0400 + (i % 64)) &&
               st.st_nlink == (nlink_t)(i % 13 == 0 ? 2 : 1));
    if (hard) bad += !(st.st_size == i);
    if (e->d_type != DT_UNKNOWN && DTTOIF(e->d_type) != (st.st_mode & S_IFMT)) dtype_bad++;
  }
  closedir(d);
  emit(N, "ok listed=%d attr_mismatch=%d dtype_mismatch=%d", seen, bad, dtype_bad);
}

/* A directory removed while open: listing it is empty, creating in it fails. */
static void c_readdir_removed(const char *N) {
  TRY(mkdirs("rdr"), "mkdir");
  TRY(mkdirs("rdr/gone"), "mkdir_gone");
  int dfd = open("rdr/gone", O_RDONLY | O_DIRECTORY);
  if (dfd < 0) FAIL("open");
  TRY(rmdir("rdr/gone"), "rmdir");
  char buf[4096];
  long r = syscall(SYS_getdents64, dfd, buf, sizeof buf);
  int e_list = r < 0 ? errno : 0;
  int real = 0;
  for (long off = 0; off < r;) {
    struct dirent64 *de = (void *)(buf + off);
    off += de->d_reclen;
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) real++;
  }
  int fd = openat(dfd, "new", O_WRONLY | O_CREAT, 0644);
  int e_create = fd < 0 ? errno : 0;
  if (fd >= 0) close(fd);
  int e_mkdir = mkdirat(dfd, "sub", 0755) < 0 ? errno : 0;
  struct stat st;
  TRY(fstat(dfd, &st), "fstat");
  close(dfd);
  emit(N, "ok getdents=%s entries=%d create_inside=%s mkdir_inside=%s nlink=%lu", e_list ? ename(e_list) : "ok", real,
       e_create ? ename(e_create) : "ok", e_mkdir ? ename(e_mkdir) : "ok", (unsigned long)st.st_nlink);
}

/* telldir/seekdir: resume a listing from a remembered position. */
static void c_readdir_seek(const char *N) {
  TRY(mkdirs("rdk"), "mkdir");
  char p[64];
  for (int i = 0; i < 300; i++) {
    snprintf(p, sizeof p, "rdk/n%03d", i);
    TRY(put_str(p, ""), "create");
  }
  DIR *d = opendir("rdk");
  if (!d) FAIL("opendir");
  struct dirent *e;
  for (int i = 0; i < 150; i++)
    if (!readdir(d)) break;
  long pos = telldir(d);
  uint64_t h1 = FNV0, h2 = FNV0;
  int n1 = 0, n2 = 0;
  while ((e = readdir(d))) h1 = fnv(e->d_name, strlen(e->d_name), h1), n1++;
  seekdir(d, pos);
  while ((e = readdir(d))) h2 = fnv(e->d_name, strlen(e->d_name), h2), n2++;
  closedir(d);
  /* Order is the file system's, so only "the same tail again" is compared. */
  emit(N, "ok rest=%d again=%d same_tail=%d", n1 + 150, n2 + 150, n1 == n2 && h1 == h2);
}

/*
 * Unlink entries while a listing is in progress, reading with small getdents
 * buffers. POSIX: entries removed after opendir may or may not be returned,
 * but every entry that stays must be returned exactly once.
 */
struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};
static void c_readdir_concurrent_unlink(const char *N) {
  const int n = 2000;
  TRY(mkdirs("rdu"), "mkdir");
  char p[64];
  for (int i = 0; i < n; i++) {
    snprintf(p, sizeof p, "rdu/u%04d", i);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) FAIL("create");
    close(fd);
  }
  int dfd = open("rdu", O_RDONLY | O_DIRECTORY);
  if (dfd < 0) FAIL("open");
  unsigned char *seen = calloc(n, 1);
  int unknown = 0, dups = 0, batches = 0;
  char buf[1024];
  for (;;) {
    long r = syscall(SYS_getdents64, dfd, buf, sizeof buf);
    if (r < 0) FAIL("getdents64");
    if (r == 0) break;
    for (long off = 0; off < r;) {
      struct linux_dirent64 *de = (void *)(buf + off);
      off += de->d_reclen;
      if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
      int idx;
      if (sscanf(de->d_name, "u%04d", &idx) != 1 || idx < 0 || idx >= n) {
        unknown++;
        continue;
      }
      if (seen[idx]++) dups++;
    }
    if (++batches == 1) {
      /* After the first batch: remove every third file, seen or not. */
      for (int i = 0; i < n; i += 3) {
        snprintf(p, sizeof p, "rdu/u%04d", i);
        if (unlink(p) < 0) FAIL("unlink");
      }
    }
  }
  close(dfd);
  int kept_missing = 0, kept = 0;
  for (int i = 0; i < n; i++)
    if (i % 3) {
      kept++;
      if (!seen[i]) kept_missing++;
    }
  free(seen);
  emit(N, "ok kept=%d kept_missing=%d dups=%d unknown=%d", kept, kept_missing, dups, unknown);
}

/*
 * Evict the kernel's dentries and inodes (FUSE: FORGET / BATCH_FORGET for
 * every node the server handed out), then come back: every name, content,
 * link count and hard-link identity must be found again from scratch.
 */
static void c_drop_caches(const char *N) {
  const int n = 200;
  TRY(mkdirs("dc"), "mkdir");
  char p[96], q[112];
  for (int i = 0; i < n; i++) {
    snprintf(p, sizeof p, "dc/%s%03d", i % 10 ? "f" : "d", i);
    if (i % 10 == 0) {
      TRY(mkdir(p, 0755), "mkdir_sub");
      snprintf(q, sizeof q, "%s/inner", p);
      TRY(put_str(q, p), "create_inner");
    } else {
      TRY(put_str(p, p), "create");
    }
  }
  TRY(link("dc/f001", "dc/d000/hard"), "link");
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
  int dropped = fd >= 0 && write(fd, "2", 1) == 1;
  if (fd >= 0) close(fd);
  int content_ok = 0;
  for (int i = 0; i < n; i++) {
    char want[32], got[64];
    snprintf(want, sizeof want, "dc/%s%03d", i % 10 ? "f" : "d", i);
    if (i % 10 == 0) snprintf(p, sizeof p, "%s/inner", want);
    else snprintf(p, sizeof p, "%s", want);
    content_of(p, got, sizeof got);
    if (!strcmp(got, want)) content_ok++;
  }
  struct stat a, b;
  TRY(stat("dc/f001", &a), "stat_a");
  TRY(stat("dc/d000/hard", &b), "stat_b");
  struct listing l;
  TRY(list_dir("dc", &l), "list");
  struct stat ds;
  TRY(stat("dc", &ds), "stat_dir");
  emit(N, "ok dropped=%s content_ok=%d/%d links_same_inode=%d nlink=%lu listed=%d dir_nlink=%lu",
       dropped ? "yes" : "no", content_ok, n, a.st_ino == b.st_ino, (unsigned long)a.st_nlink, l.n,
       (unsigned long)ds.st_nlink);
  listing_free(&l);
}

/* ====================================================================== */
/* chmod / chown / utimensat                                               */
/* ====================================================================== */
static void c_chmod(const char *N) {
  TRY(mkdirs("cm"), "mkdir");
  TRY(put_str("cm/f", "x"), "create");
  static const mode_t modes[] = {0600, 0755, 04755, 02755, 01777, 0};
  char out[128] = "";
  /* Opened before mode 0000 so a non-root owner (--as-uid) gets as far. */
  int fd = open("cm/f", O_RDONLY);
  if (fd < 0) FAIL("open");
  for (int i = 0; i < 6; i++) {
    TRY(chmod("cm/f", modes[i]), "chmod");
    struct stat st;
    TRY(stat("cm/f", &st), "stat");
    char one[16];
    snprintf(one, sizeof one, "%s%04o", i ? "," : "", st.st_mode & 07777);
    strcat(out, one);
  }
  TRY(fchmod(fd, 0640), "fchmod");
  struct stat fs;
  TRY(fstat(fd, &fs), "fstat");
  close(fd);
  TRY(chmod("cm", 0711), "chmod_dir");
  struct stat ds;
  TRY(stat("cm", &ds), "stat_dir");
  TRY(symlink("f", "cm/l"), "symlink");
  TRY(chmod("cm/l", 0604), "chmod_through_link"); /* follows the link */
  struct stat ts, ls;
  TRY(stat("cm/f", &ts), "stat_target");
  TRY(lstat("cm/l", &ls), "lstat_link");
  emit(N, "ok file=%s fchmod=%04o dir=%04o via_link=%04o link=%04o", out, fs.st_mode & 07777, ds.st_mode & 07777,
       ts.st_mode & 07777, ls.st_mode & 07777);
}

/* The caller's umask shapes new modes (applied by the kernel or the server). */
static void c_umask(const char *N) {
  TRY(mkdirs("um"), "mkdir");
  mode_t old = umask(027);
  int fd = open("um/f", O_WRONLY | O_CREAT | O_EXCL, 0666);
  int e1 = fd < 0 ? errno : 0;
  if (fd >= 0) close(fd);
  int e2 = mkdir("um/d", 0777) < 0 ? errno : 0;
  int e3 = mkfifo("um/p", 0666) < 0 ? errno : 0;
  int e4 = symlink("f", "um/l") < 0 ? errno : 0;
  umask(0);
  /* mkdir(2) keeps only the permission and sticky bits of its mode argument. */
  int e5 = mkdir("um/all", 07777) < 0 ? errno : 0;
  umask(old);
  if (e1 || e2 || e3 || e4 || e5) {
    errno = e1 ? e1 : e2 ? e2 : e3 ? e3 : e4 ? e4 : e5;
    FAIL("create");
  }
  struct stat f, d, p, l, a;
  TRY(stat("um/all", &a), "stat_all");
  TRY(stat("um/f", &f), "stat_f");
  TRY(stat("um/d", &d), "stat_d");
  TRY(lstat("um/p", &p), "stat_p");
  TRY(lstat("um/l", &l), "stat_l");
  emit(N, "ok file=%04o dir=%04o fifo=%04o symlink=%04o mkdir_07777=%04o", f.st_mode & 07777, d.st_mode & 07777,
       p.st_mode & 07777, l.st_mode & 07777, a.st_mode & 07777);
}

/* BSD group semantics: a set-group-ID directory hands its group (and, to
 * subdirectories, the bit itself) to whatever is created inside it. */
static void c_setgid_dir(const char *N) {
  TRY(mkdir("sg", 0755), "mkdir");
  TRY(chown("sg", 0, 4321), "chown");
  TRY(chmod("sg", 02775), "chmod");
  TRY(put_str("sg/f", "x"), "create");
  TRY(mkdir("sg/d", 0755), "mkdir_sub");
  struct stat f, d;
  TRY(stat("sg/f", &f), "stat_f");
  TRY(stat("sg/d", &d), "stat_d");
  emit(N, "ok file_gid=%u dir_gid=%u dir_mode=%04o", f.st_gid, d.st_gid, d.st_mode & 07777);
}

static void c_chown(const char *N) {
  TRY(mkdirs("co"), "mkdir");
  TRY(put_str("co/f", "x"), "create");
  TRY(chown("co/f", 1234, 5678), "chown");
  struct stat a, b, c;
  TRY(stat("co/f", &a), "stat1");
  TRY(chown("co/f", -1, 42), "chown_gid");
  TRY(stat("co/f", &b), "stat2");
  TRY(symlink("f", "co/l"), "symlink");
  TRY(lchown("co/l", 777, 888), "lchown");
  struct stat ls, ts;
  TRY(lstat("co/l", &ls), "lstat");
  TRY(stat("co/f", &ts), "stat_target");
  /* chown clears set-user-ID and set-group-ID (with group x) on regular files. */
  TRY(chmod("co/f", 06755), "chmod_suid");
  TRY(chown("co/f", 1000, 1000), "chown_suid");
  TRY(stat("co/f", &c), "stat3");
  int fd = open("co/f", O_RDONLY);
  if (fd < 0) FAIL("open");
  TRY(fchown(fd, 0, 0), "fchown");
  struct stat fs;
  TRY(fstat(fd, &fs), "fstat");
  close(fd);
  emit(N, "ok owner=%u:%u gid_only=%u:%u link=%u:%u target=%u:%u suid_after_chown=%04o fchown=%u:%u", a.st_uid,
       a.st_gid, b.st_uid, b.st_gid, ls.st_uid, ls.st_gid, ts.st_uid, ts.st_gid, c.st_mode & 07777, fs.st_uid,
       fs.st_gid);
}

static void c_utimens(const char *N) {
  TRY(mkdirs("ut"), "mkdir");
  TRY(put_str("ut/f", "x"), "create");
  TRY(set_times("ut/f", T_OLD, T_OLD2, 0), "set");
  struct stat s;
  TRY(stat("ut/f", &s), "stat_set");
  char exact[96];
  snprintf(exact, sizeof exact, "atime=%lld.%09ld mtime=%lld.%09ld", (long long)s.st_atim.tv_sec, s.st_atim.tv_nsec,
           (long long)s.st_mtim.tv_sec, s.st_mtim.tv_nsec);
  /* UTIME_NOW on atime, UTIME_OMIT on mtime: only atime moves. */
  struct timespec now_omit[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  TRY(utimensat(AT_FDCWD, "ut/f", now_omit, 0), "now_omit");
  struct stat s2;
  TRY(stat("ut/f", &s2), "stat2");
  TRY(set_times("ut/f", T_OLD, T_OLD2, 0), "reset");
  struct timespec omit_now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  TRY(utimensat(AT_FDCWD, "ut/f", omit_now, 0), "omit_now");
  struct stat s3;
  TRY(stat("ut/f", &s3), "stat3");
  TRY(set_times("ut/f", T_OLD, T_OLD2, 0), "reset2");
  TRY(utimensat(AT_FDCWD, "ut/f", NULL, 0), "null");
  struct stat s4;
  TRY(stat("ut/f", &s4), "stat4");
  /* futimens through an fd, and AT_SYMLINK_NOFOLLOW on a link. */
  int fd = open("ut/f", O_RDWR);
  if (fd < 0) FAIL("open");
  struct timespec both[2] = {T_OLD2, T_OLD};
  TRY(futimens(fd, both), "futimens");
  struct stat s5;
  TRY(fstat(fd, &s5), "fstat");
  close(fd);
  TRY(symlink("f", "ut/l"), "symlink");
  TRY(set_times("ut/l", T_OLD, T_OLD, AT_SYMLINK_NOFOLLOW), "nofollow");
  struct stat ls, ts;
  TRY(lstat("ut/l", &ls), "lstat");
  TRY(stat("ut/f", &ts), "stat_target");
  emit(N,
       "ok %s now_omit=a:%s,m:%s omit_now=a:%s,m:%s null=a:%s,m:%s futimens=%s link_nofollow=%s target_untouched=%s",
       exact, chg(s2.st_atim, T_OLD), chg(s2.st_mtim, T_OLD2), chg(s3.st_atim, T_OLD), chg(s3.st_mtim, T_OLD2),
       chg(s4.st_atim, T_OLD), chg(s4.st_mtim, T_OLD2),
       ts_eq(s5.st_atim, T_OLD2) && ts_eq(s5.st_mtim, T_OLD) ? "exact" : "differs",
       ts_eq(ls.st_mtim, T_OLD) ? "exact" : "differs", ts_eq(ts.st_mtim, T_OLD) ? "same" : "changed");
}

/* Data and namespace changes must move mtime (compared with a value we set). */
static void c_mtime_updates(const char *N) {
  TRY(mkdirs("mt"), "mkdir");
  TRY(put_str("mt/f", "x"), "create");
  TRY(set_times("mt/f", T_OLD, T_OLD, 0), "set_f");
  int fd = open("mt/f", O_WRONLY);
  if (fd < 0) FAIL("open");
  TRY(write(fd, "y", 1), "write");
  struct stat a;
  TRY(fstat(fd, &a), "fstat");
  close(fd);
  struct stat a2;
  TRY(stat("mt/f", &a2), "stat_after_close");
  TRY(set_times("mt/f", T_OLD, T_OLD, 0), "set_f2");
  TRY(truncate("mt/f", 0), "truncate");
  struct stat b;
  TRY(stat("mt/f", &b), "stat_truncate");
  TRY(set_times("mt", T_OLD, T_OLD, 0), "set_dir");
  TRY(put_str("mt/g", "new"), "create_g");
  struct stat c;
  TRY(stat("mt", &c), "stat_dir_create");
  TRY(set_times("mt", T_OLD, T_OLD, 0), "set_dir2");
  TRY(unlink("mt/g"), "unlink");
  struct stat d;
  TRY(stat("mt", &d), "stat_dir_unlink");
  emit(N, "ok write=%s after_close=%s truncate=%s dir_create=%s dir_unlink=%s", chg(a.st_mtim, T_OLD),
       chg(a2.st_mtim, T_OLD), chg(b.st_mtim, T_OLD), chg(c.st_mtim, T_OLD), chg(d.st_mtim, T_OLD));
}

/* ====================================================================== */
/* xattrs                                                                  */
/* ====================================================================== */
static void user_names(const char *list, ssize_t n, char *out, size_t cap) {
  /* Keep only user.* names (security.* may come from LSMs), sorted. */
  const char *names[64];
  int k = 0;
  for (ssize_t i = 0; i < n && k < 64; i += strlen(list + i) + 1)
    if (!strncmp(list + i, "user.", 5)) names[k++] = list + i;
  qsort(names, k, sizeof(char *), cmpstr);
  out[0] = 0;
  for (int i = 0; i < k; i++) {
    if (i) strncat(out, ",", cap - strlen(out) - 1);
    strncat(out, names[i], cap - strlen(out) - 1);
  }
}

static void c_xattr(const char *N) {
  TRY(put_str("xa", "x"), "create");
  TRY(setxattr("xa", "user.a", "alpha", 5, 0), "set_a");
  TRY(setxattr("xa", "user.b", "", 0, 0), "set_b_empty");
  char v[64];
  ssize_t g = getxattr("xa", "user.a", v, sizeof v);
  if (g < 0) FAIL("get_a");
  v[g] = 0;
  ssize_t need = getxattr("xa", "user.a", NULL, 0);
  char tiny[2];
  int e_range = getxattr("xa", "user.a", tiny, sizeof tiny) < 0 ? errno : 0;
  ssize_t gb = getxattr("xa", "user.b", v + 32, 16);
  int e_create = setxattr("xa", "user.a", "x", 1, XATTR_CREATE) < 0 ? errno : 0;
  int e_replace_missing = setxattr("xa", "user.none", "x", 1, XATTR_REPLACE) < 0 ? errno : 0;
  TRY(setxattr("xa", "user.a", "beta!", 5, XATTR_REPLACE), "replace");
  char v2[16];
  ssize_t g2 = getxattr("xa", "user.a", v2, sizeof v2 - 1);
  if (g2 < 0) FAIL("get_replaced");
  v2[g2] = 0;
  int e_missing = getxattr("xa", "user.none", v, sizeof v) < 0 ? errno : 0;
  char list[1024], names[256];
  ssize_t ln = listxattr("xa", list, sizeof list);
  if (ln < 0) FAIL("list");
  user_names(list, ln, names, sizeof names);
  ssize_t lneed = listxattr("xa", NULL, 0);
  int e_list_range = listxattr("xa", list, 3) < 0 ? errno : 0;
  TRY(removexattr("xa", "user.a"), "remove");
  int e_after_remove = getxattr("xa", "user.a", v, sizeof v) < 0 ? errno : 0;
  int e_remove_missing = removexattr("xa", "user.a") < 0 ? errno : 0;
  ln = listxattr("xa", list, sizeof list);
  if (ln < 0) FAIL("list2");
  char names2[256];
  user_names(list, ln, names2, sizeof names2);
  emit(N,
       "ok get=%s size_query=%zd small_buf=%s empty_len=%zd create_existing=%s replace_missing=%s replaced=%s "
       "get_missing=%s list=%s list_query_ge=%d list_small=%s removed_get=%s remove_missing=%s list_after=%s",
       v, need, e_range ? ename(e_range) : "ok", gb, e_create ? ename(e_create) : "ok",
       e_replace_missing ? ename(e_replace_missing) : "ok", v2, e_missing ? ename(e_missing) : "ok", names,
       lneed >= (ssize_t)strlen("user.a") + 1 + (ssize_t)strlen("user.b") + 1, e_list_range ? ename(e_list_range) : "ok",
       e_after_remove ? ename(e_after_remove) : "ok", e_remove_missing ? ename(e_remove_missing) : "ok", names2);
}

static void c_xattr_more(const char *N) {
  TRY(mkdirs("xd"), "mkdir");
  TRY(setxattr("xd", "user.dir", "d", 1, 0), "set_dir");
  char v[8192];
  ssize_t g = getxattr("xd", "user.dir", v, sizeof v);
  if (g < 0) FAIL("get_dir");
  /* A 4000-byte value round-trips through an fd. */
  TRY(put_str("xd/f", "x"), "create");
  char big[4000];
  fill(big, sizeof big, 21);
  int fd = open("xd/f", O_RDONLY);
  if (fd < 0) FAIL("open");
  TRY(fsetxattr(fd, "user.big", big, sizeof big, 0), "fset_big");
  ssize_t gb = fgetxattr(fd, "user.big", v, sizeof v);
  close(fd);
  if (gb < 0) FAIL("fget_big");
  /* user.* is refused on symlinks; unknown namespaces are refused. */
  TRY(symlink("f", "xd/l"), "symlink");
  int e_link = lsetxattr("xd/l", "user.x", "1", 1, 0) < 0 ? errno : 0;
  int e_ns = setxattr("xd/f", "bogus.x", "1", 1, 0) < 0 ? errno : 0;
  int e_nofile = setxattr("xd/none", "user.x", "1", 1, 0) < 0 ? errno : 0;
  emit(N, "ok dir=%.*s big=%zd big_match=%d symlink_user=%s bad_namespace=%s missing_file=%s", (int)g, v, gb,
       gb == 4000 && !memcmp(v, big, 4000), e_link ? ename(e_link) : "ok", e_ns ? ename(e_ns) : "ok",
       e_nofile ? ename(e_nofile) : "ok");
}

/* ====================================================================== */
/* mmap                                                                    */
/* ====================================================================== */
static void c_mmap_shared(const char *N) {
  const size_t len = 3 * 4096 + 100;
  int fd = open("mm", O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  TRY(ftruncate(fd, len), "ftruncate");
  char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) FAIL("mmap");
  char *pat = xmalloc(len);
  fill(pat, len, 31);
  memcpy(m, pat, len);
  TRY(msync(m, len, MS_SYNC), "msync");
  TRY(munmap(m, len), "munmap");
  close(fd);
  /* A separate open file description must see the stores through read(). */
  int fd2 = open("mm", O_RDONLY);
  if (fd2 < 0) FAIL("reopen");
  char *back = xmalloc(len);
  ssize_t r = pread_all(fd2, back, len, 0);
  close(fd2);
  emit(N, "ok read=%zd match=%d", r, r == (ssize_t)len && !memcmp(back, pat, len));
  free(pat);
  free(back);
}

static void c_mmap_read_private(const char *N) {
  char d[8192];
  fill(d, sizeof d, 32);
  TRY(put_file("mmr", d, sizeof d, 0644), "create");
  int fd = open("mmr", O_RDWR);
  if (fd < 0) FAIL("open");
  char *m = mmap(NULL, sizeof d, PROT_READ, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) FAIL("mmap_shared_ro");
  int seen = !memcmp(m, d, sizeof d);
  /* A write() after mapping shows up in the shared mapping. */
  TRY(pwrite(fd, "CHANGED", 7, 100), "pwrite");
  int seen_write = !memcmp(m + 100, "CHANGED", 7);
  munmap(m, sizeof d);
  char *p = mmap(NULL, sizeof d, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) FAIL("mmap_private");
  memcpy(p, "PRIVATE", 7);
  munmap(p, sizeof d);
  char b[8];
  TRY(pread(fd, b, 7, 0), "pread");
  close(fd);
  emit(N, "ok shared_read=%d sees_write=%d private_leaked=%d", seen, seen_write, !memcmp(b, "PRIVATE", 7));
}

/* ====================================================================== */
/* locks                                                                   */
/* ====================================================================== */
static void c_flock(const char *N) {
  TRY(put_str("fl", "lock"), "create");
  int a = open("fl", O_RDWR), b = open("fl", O_RDWR);
  if (a < 0 || b < 0) FAIL("open");
  TRY(flock(a, LOCK_EX), "ex_a");
  int e_b = flock(b, LOCK_EX | LOCK_NB) < 0 ? errno : 0;
  int e_bsh = flock(b, LOCK_SH | LOCK_NB) < 0 ? errno : 0;
  TRY(flock(a, LOCK_UN), "un_a");
  int e_b2 = flock(b, LOCK_EX | LOCK_NB) < 0 ? errno : 0;
  flock(b, LOCK_UN);
  TRY(flock(a, LOCK_SH), "sh_a");
  int e_shared = flock(b, LOCK_SH | LOCK_NB) < 0 ? errno : 0;
  flock(a, LOCK_UN);
  flock(b, LOCK_UN);
  /* Open file description locks conflict between two fds of one process. */
  struct flock l1 = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 8};
  struct flock l2 = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 4, .l_len = 2};
  struct flock l3 = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 8, .l_len = 8};
  TRY(fcntl(a, F_OFD_SETLK, &l1), "ofd_a");
  int e_ofd = fcntl(b, F_OFD_SETLK, &l2) < 0 ? errno : 0;
  int e_ofd2 = fcntl(b, F_OFD_SETLK, &l3) < 0 ? errno : 0;
  close(a);
  close(b);
  emit(N, "ok second_ex=%s second_sh=%s after_unlock=%s both_shared=%s ofd_overlap=%s ofd_disjoint=%s",
       e_b ? ename(e_b) : "ok", e_bsh ? ename(e_bsh) : "ok", e_b2 ? ename(e_b2) : "ok", e_shared ? ename(e_shared) : "ok",
       e_ofd ? ename(e_ofd) : "ok", e_ofd2 ? ename(e_ofd2) : "ok");
}

/* POSIX record locks conflict only between processes: check from a child. */
static void c_posix_lock(const char *N) {
  TRY(put_str("pl", "0123456789abcdef"), "create");
  int fd = open("pl", O_RDWR);
  if (fd < 0) FAIL("open");
  struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 8};
  TRY(fcntl(fd, F_SETLK, &l), "setlk");
  int pfd[2];
  TRY(pipe(pfd), "pipe");
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) FAIL("fork");
  if (pid == 0) {
    int cfd = open("pl", O_RDWR);
    struct flock c1 = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 4, .l_len = 2};
    int r1 = fcntl(cfd, F_SETLK, &c1) < 0 ? errno : 0;
    struct flock g = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 16};
    fcntl(cfd, F_GETLK, &g);
    struct flock c2 = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 8, .l_len = 8};
    int r2 = fcntl(cfd, F_SETLK, &c2) < 0 ? errno : 0;
    int res[5] = {r1, g.l_type, (int)g.l_start, (int)g.l_len, r2};
    if (write(pfd[1], res, sizeof res) < 0) _exit(1);
    _exit(0);
  }
  close(pfd[1]);
  int res[5] = {0};
  ssize_t got = read(pfd[0], res, sizeof res);
  close(pfd[0]);
  waitpid(pid, NULL, 0);
  close(fd);
  if (got != sizeof res) BAD("child reported nothing");
  emit(N, "ok overlap=%s getlk=%s,%d,%d disjoint=%s", res[0] ? ename(res[0]) : "ok",
       res[1] == F_WRLCK ? "wrlck" : res[1] == F_UNLCK ? "unlck" : "other", res[2], res[3],
       res[4] ? ename(res[4]) : "ok");
}

/* ====================================================================== */
/* fsync / fdatasync                                                       */
/* ====================================================================== */
static void c_sync(const char *N) {
  int fd = open("sy", O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) FAIL("create");
  TRY(write(fd, "data", 4), "write");
  TRY(fsync(fd), "fsync");
  TRY(pwrite(fd, "more", 4, 4), "write2");
  TRY(fdatasync(fd), "fdatasync");
  TRY(syncfs(fd), "syncfs");
  close(fd);
  int dfd = open(".", O_RDONLY | O_DIRECTORY);
  if (dfd < 0) FAIL("open_dir");
  TRY(fsync(dfd), "fsync_dir");
  close(dfd);
  fd = open("sy", O_WRONLY | O_SYNC);
  if (fd < 0) FAIL("open_osync");
  TRY(pwrite(fd, "sync", 4, 8), "write_osync");
  close(fd);
  char b[16] = {0};
  if (get_file("sy", b, sizeof b - 1) < 0) FAIL("read");
  emit(N, "ok content=%s", b);
}

/* ====================================================================== */
/* O_APPEND from two writers                                               */
/* ====================================================================== */
static void c_append_two_fds(const char *N) {
  int a = open("ap2", O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0644);
  if (a < 0) FAIL("create");
  int b = open("ap2", O_WRONLY | O_APPEND);
  if (b < 0) FAIL("open_b");
  size_t total = 0;
  uint64_t h = FNV0;
  for (int i = 0; i < 300; i++) {
    char rec[64];
    int n = snprintf(rec, sizeof rec, "%c%d:%.*s\n", i % 2 ? 'B' : 'A', i, i % 23, "-----------------------");
    if (write(i % 2 ? b : a, rec, n) != n) FAIL("write");
    total += n;
    h = fnv(rec, n, h);
  }
  close(a);
  close(b);
  uint64_t fh;
  off_t len;
  TRY(hash_file("ap2", &fh, &len), "hash");
  emit(N, "ok size=%lld expected=%zu content=%s", (long long)len, total, fh == h ? "in_order" : "differs");
}

/* Two processes appending concurrently: no record lost, none torn. */
static void c_append_two_procs(const char *N) {
  const int per = 500, rec = 64;
  int fd0 = open("apc", O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd0 < 0) FAIL("create");
  close(fd0);
  fflush(stdout);
  pid_t kids[2];
  for (int k = 0; k < 2; k++) {
    kids[k] = fork();
    if (kids[k] < 0) FAIL("fork");
    if (kids[k] == 0) {
      int fd = open("apc", O_WRONLY | O_APPEND);
      if (fd < 0) _exit(1);
      for (int i = 0; i < per; i++) {
        char r[64];
        memset(r, '.', sizeof r);
        int n = snprintf(r, sizeof r, "P%d %04d ", k, i);
        r[n] = '.';
        r[rec - 1] = '\n';
        if (write(fd, r, rec) != rec) _exit(1);
      }
      _exit(0);
    }
  }
  int bad_exit = 0;
  for (int k = 0; k < 2; k++) {
    int st;
    waitpid(kids[k], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) bad_exit++;
  }
  struct stat st;
  TRY(stat("apc", &st), "stat");
  char *all = xmalloc(st.st_size + 1);
  ssize_t r = get_file("apc", all, st.st_size);
  if (r < 0) FAIL("read");
  unsigned char seen[2][500] = {{0}};
  int torn = 0, dup = 0;
  for (ssize_t off = 0; off + rec <= r; off += rec) {
    int k, i;
    if (sscanf(all + off, "P%d %04d ", &k, &i) != 2 || k < 0 || k > 1 || i < 0 || i >= per || all[off + rec - 1] != '\n') {
      torn++;
      continue;
    }
    if (seen[k][i]++) dup++;
  }
  int lost = 0;
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < per; i++)
      if (!seen[k][i]) lost++;
  free(all);
  /* The interleaving is the scheduler's: leave no file whose bytes differ per run. */
  TRY(unlink("apc"), "unlink");
  emit(N, "ok size=%lld torn=%d dup=%d lost=%d writer_failures=%d", (long long)st.st_size, torn, dup, lost, bad_exit);
}

/* ====================================================================== */
/* names                                                                   */
/* ====================================================================== */
static void c_names_unicode(const char *N) {
  TRY(mkdirs("un"), "mkdir");
  static const char *names[] = {
      "h\xc3\xa9llo",                     /* héllo, NFC */
      "he\xcc\x81llo",                    /* héllo, NFD: a different name on Linux */
      "\xe4\xb8\x96\xe7\x95\x8c",         /* 世界 */
      "\xf0\x9f\x8e\x89-party",           /* emoji (4-byte UTF-8) */
      "with space",
      "new\nline",
      "back\\slash",
      "\xff\xfe-not-utf8",                /* arbitrary bytes are legal names */
      "Case", "case",
  };
  const int n = sizeof names / sizeof *names;
  char p[300];
  for (int i = 0; i < n; i++) {
    snprintf(p, sizeof p, "un/%s", names[i]);
    char content[8];
    snprintf(content, sizeof content, "%d", i);
    if (put_str(p, content) < 0) FAIL("create");
  }
  struct listing l;
  TRY(list_dir("un", &l), "list");
  int found = 0, right = 0;
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < l.n; j++)
      if (!strcmp(l.names[j], names[i])) found++;
    snprintf(p, sizeof p, "un/%s", names[i]);
    char c[8];
    content_of(p, c, sizeof c);
    if (atoi(c) == i && c[0] >= '0' && c[0] <= '9') right++;
  }
  emit(N, "ok created=%d listed=%d found=%d content_right=%d hash=%016" PRIx64, n, l.n, found, right, listing_hash(&l));
  listing_free(&l);
}

static void c_names_long(const char *N) {
  TRY(mkdirs("nl"), "mkdir");
  char n255[300] = "nl/", n256[300] = "nl/";
  memset(n255 + 3, 'a', 255);
  n255[258] = 0;
  memset(n256 + 3, 'b', 256);
  n256[259] = 0;
  char u255[300] = "nl/", u258[300] = "nl/";
  for (int i = 0; i < 85; i++) memcpy(u255 + 3 + 3 * i, "\xe4\xb8\x96", 3); /* 85 x 3 bytes = 255 */
  u255[3 + 255] = 0;
  for (int i = 0; i < 86; i++) memcpy(u258 + 3 + 3 * i, "\xe7\x95\x8c", 3); /* 258 bytes */
  u258[3 + 258] = 0;
  int e255 = put_str(n255, "255") < 0 ? errno : 0;
  struct stat st;
  int e255s = stat(n255, &st) < 0 ? errno : 0;
  int eu255 = put_str(u255, "u255") < 0 ? errno : 0;
  int e256 = open(n256, O_WRONLY | O_CREAT, 0644) < 0 ? errno : 0;
  int e256s = stat(n256, &st) < 0 ? errno : 0;
  int e256m = mkdir(n256, 0755) < 0 ? errno : 0;
  int eu258 = open(u258, O_WRONLY | O_CREAT, 0644) < 0 ? errno : 0;
  int e256r = rename(n255, n256) < 0 ? errno : 0;
  int e256l = symlink("x", n256) < 0 ? errno : 0;
  struct listing l;
  TRY(list_dir("nl", &l), "list");
  int longest = 0;
  for (int i = 0; i < l.n; i++)
    if ((int)strlen(l.names[i]) > longest) longest = strlen(l.names[i]);
  emit(N, "ok create255=%s stat255=%s utf8_255=%s create256=%s stat256=%s mkdir256=%s utf8_258=%s rename_to256=%s "
          "symlink256=%s listed=%d longest=%d",
       e255 ? ename(e255) : "ok", e255s ? ename(e255s) : "ok", eu255 ? ename(eu255) : "ok", e256 ? ename(e256) : "ok",
       e256s ? ename(e256s) : "ok", e256m ? ename(e256m) : "ok", eu258 ? ename(eu258) : "ok",
       e256r ? ename(e256r) : "ok", e256l ? ename(e256l) : "ok", l.n, longest);
  listing_free(&l);
}

/* ====================================================================== */
/* special files                                                           */
/* ====================================================================== */
static void c_special(const char *N) {
  TRY(mkdirs("sp"), "mkdir");
  TRY(mkfifo("sp/fifo", 0640), "mkfifo");
  TRY(mknod("sp/null", S_IFCHR | 0666, makedev(1, 3)), "mknod_chr");
  TRY(mknod("sp/reg", S_IFREG | 0600, 0), "mknod_reg");
  struct stat f, c, r;
  TRY(lstat("sp/fifo", &f), "stat_fifo");
  TRY(lstat("sp/null", &c), "stat_chr");
  TRY(lstat("sp/reg", &r), "stat_reg");
  /* A FIFO on any file system is a kernel pipe: data never goes to the fs. */
  int fd = open("sp/fifo", O_RDWR | O_NONBLOCK);
  if (fd < 0) FAIL("open_fifo");
  TRY(write(fd, "pipe", 4), "write_fifo");
  char b[8] = {0};
  TRY(read(fd, b, sizeof b - 1), "read_fifo");
  close(fd);
  emit(N, "ok fifo=%s,%04o chr=%s,%04o,%u:%u reg=%s,%04o,%lld fifo_io=%s", ftype(f.st_mode), f.st_mode & 07777,
       ftype(c.st_mode), c.st_mode & 07777, major(c.st_rdev), minor(c.st_rdev), ftype(r.st_mode), r.st_mode & 07777,
       (long long)r.st_size, b);
}

/* ====================================================================== */
/* misc: access, copy_file_range                                           */
/* ====================================================================== */
static void c_access(const char *N) {
  TRY(put_str("ac", "x"), "create");
  TRY(chmod("ac", 0644), "chmod");
  int f = access("ac", F_OK) < 0 ? errno : 0;
  int r = access("ac", R_OK | W_OK) < 0 ? errno : 0;
  int x = access("ac", X_OK) < 0 ? errno : 0; /* root too: no x bit at all */
  TRY(chmod("ac", 0000), "chmod0");
  int r0 = access("ac", R_OK) < 0 ? errno : 0; /* root overrides */
  int m = access("ac-missing", F_OK) < 0 ? errno : 0;
  emit(N, "ok f=%s rw=%s x=%s root_r_on_0000=%s missing=%s", f ? ename(f) : "ok", r ? ename(r) : "ok",
       x ? ename(x) : "ok", r0 ? ename(r0) : "ok", m ? ename(m) : "ok");
}

static void c_copy_file_range(const char *N) {
  const size_t len = MiB + 333;
  char *d = xmalloc(len);
  fill(d, len, 41);
  TRY(put_file("cfr_src", d, len, 0644), "create");
  int in = open("cfr_src", O_RDONLY), out = open("cfr_dst", O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (in < 0 || out < 0) FAIL("open");
  size_t done = 0;
  while (done < len) {
    ssize_t r = copy_file_range(in, NULL, out, NULL, len - done, 0);
    if (r < 0) FAIL("copy_file_range");
    if (r == 0) break;
    done += r;
  }
  close(in);
  close(out);
  uint64_t h;
  off_t l;
  TRY(hash_file("cfr_dst", &h, &l), "hash");
  emit(N, "ok copied=%zu size=%lld match=%d", done, (long long)l, h == fnv(d, len, FNV0));
  free(d);
}

/* ====================================================================== */
/* errno for every failure case                                            */
/* ====================================================================== */
static void c_errno(const char *N) {
  (void)N;
  if (mkdirs("er") < 0 || mkdirs("er/dir") < 0 || mkdirs("er/full") < 0 || put_str("er/full/x", "x") < 0 ||
      put_str("er/file", "f") < 0) {
    emit("errno.setup", "%s", ename(errno));
    return;
  }
  struct stat st;
  char b[16];
  int fd;
#define E(name, call) emit_rc("errno." name, (long)(call))
#define EFD(name, call)                                 \
  do {                                                  \
    fd = (call);                                        \
    emit_rc("errno." name, fd);                         \
    if (fd >= 0) close(fd);                             \
  } while (0)
  /* ENOENT */
  EFD("enoent.open", open("er/missing", O_RDONLY));
  E("enoent.stat", stat("er/missing", &st));
  E("enoent.unlink", unlink("er/missing"));
  E("enoent.rmdir", rmdir("er/missing"));
  E("enoent.rename_src", rename("er/missing", "er/other"));
  EFD("enoent.create_in_missing_dir", open("er/nodir/f", O_WRONLY | O_CREAT, 0644));
  E("enoent.mkdir_in_missing_dir", mkdir("er/nodir/d", 0755));
  E("enoent.readlink", readlink("er/missing", b, sizeof b));
  E("enoent.chmod", chmod("er/missing", 0644));
  E("enoent.truncate", truncate("er/missing", 0));
  E("enoent.link_src", link("er/missing", "er/l"));
  E("enoent.empty_path", stat("", &st));
  /* EEXIST */
  E("eexist.mkdir", mkdir("er/dir", 0755));
  E("eexist.mkdir_over_file", mkdir("er/file", 0755));
  EFD("eexist.open_excl", open("er/file", O_WRONLY | O_CREAT | O_EXCL, 0644));
  EFD("eexist.open_excl_dir", open("er/dir", O_WRONLY | O_CREAT | O_EXCL, 0644));
  /* O_EXCL never follows a symlink, not even a dangling one. */
  if (symlink("nowhere", "er/dangling") == 0)
    EFD("eexist.open_excl_dangling_symlink", open("er/dangling", O_WRONLY | O_CREAT | O_EXCL, 0644));
  E("eexist.symlink", symlink("x", "er/file"));
  E("eexist.link", link("er/file", "er/dir"));
  E("eexist.mknod", mknod("er/file", S_IFIFO | 0644, 0));
  /* ENOTEMPTY */
  E("enotempty.rmdir", rmdir("er/full"));
  E("enotempty.rename_onto", rename("er/dir", "er/full"));
  /* EISDIR */
  EFD("eisdir.open_wronly", open("er/dir", O_WRONLY));
  EFD("eisdir.open_rdwr", open("er/dir", O_RDWR));
  EFD("eisdir.open_creat", open("er/dir", O_WRONLY | O_CREAT, 0644));
  E("eisdir.unlink", unlink("er/dir"));
  E("eisdir.rename_file_onto_dir", rename("er/file", "er/dir"));
  E("eisdir.truncate", truncate("er/dir", 0));
  fd = open("er/dir", O_RDONLY | O_DIRECTORY);
  emit_rc("errno.eisdir.read_dir_fd", fd < 0 ? -1 : read(fd, b, sizeof b));
  if (fd >= 0) close(fd);
  /* ENOTDIR */
  E("enotdir.stat_through_file", stat("er/file/x", &st));
  EFD("enotdir.open_through_file", open("er/file/x", O_RDONLY));
  EFD("enotdir.create_through_file", open("er/file/x", O_WRONLY | O_CREAT, 0644));
  E("enotdir.mkdir_through_file", mkdir("er/file/x", 0755));
  E("enotdir.rmdir_file", rmdir("er/file"));
  EFD("enotdir.o_directory_on_file", open("er/file", O_RDONLY | O_DIRECTORY));
  E("enotdir.rename_dir_onto_file", rename("er/dir", "er/file"));
  E("enotdir.trailing_slash_on_file", stat("er/file/", &st));
  /* EINVAL */
  E("einval.rename_into_own_subdir", rename("er/dir", "er/dir/sub"));
  E("einval.rmdir_dot", rmdir("er/dir/."));
  E("einval.readlink_regular", readlink("er/file", b, sizeof b));
  /* ELOOP, EPERM, EBADF */
  if (symlink("file", "er/link") == 0) EFD("eloop.o_nofollow", open("er/link", O_RDONLY | O_NOFOLLOW));
  E("eperm.link_dir", link("er/dir", "er/dirlink"));
  fd = open("er/file", O_RDONLY);
  emit_rc("errno.ebadf.write_on_rdonly", fd < 0 ? -1 : write(fd, "x", 1));
  if (fd >= 0) close(fd);
  fd = open("er/file", O_WRONLY);
  emit_rc("errno.ebadf.read_on_wronly", fd < 0 ? -1 : read(fd, b, 1));
  if (fd >= 0) close(fd);
#undef E
#undef EFD
}

/* ====================================================================== */
/* permissions as a non-root caller                                        */
/* ====================================================================== */
static void child_as(uid_t uid) {
  if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0) {
    emit("perm.drop_privileges", "%s", ename(errno));
    fflush(stdout);
    _exit(1);
  }
}

static void c_perm(const char *N) {
  if (geteuid() != 0) {
    emit(N, "skipped-not-root");
    return;
  }
  /* The battery root and our own subtree must be searchable by the child. */
  TRY(chmod(".", 0755), "chmod_root");
  TRY(mkdir("perm", 0755), "mkdir");
  TRY(chmod("perm", 0755), "chmod_perm");
  TRY(put_file("perm/secret", "secret", 6, 0600), "secret");
  TRY(chmod("perm/secret", 0600), "chmod_secret");
  TRY(put_file("perm/public", "public", 6, 0644), "public");
  TRY(chmod("perm/public", 0644), "chmod_public");
  TRY(mkdir("perm/open", 0777), "mkdir_open");
  TRY(chmod("perm/open", 0777), "chmod_open");
  TRY(mkdir("perm/sticky", 0777), "mkdir_sticky");
  TRY(chmod("perm/sticky", 01777), "chmod_sticky");
  TRY(put_file("perm/sticky/roots", "r", 1, 0666), "sticky_file");
  TRY(chmod("perm/sticky/roots", 0666), "chmod_sticky_file");
  TRY(mkdir("perm/private", 0700), "mkdir_private");
  TRY(put_str("perm/private/x", "x"), "private_file");
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) FAIL("fork");
  if (pid == 0) {
    child_as(opt_nonroot_uid);
    int fd;
    struct stat st;
    char b[8];
#define P(name, call) emit_rc("perm." name, (long)(call))
#define PFD(name, call)                                 \
  do {                                                  \
    fd = (call);                                        \
    emit_rc("perm." name, fd);                          \
    if (fd >= 0) close(fd);                             \
  } while (0)
    PFD("read_0600_root_file", open("perm/secret", O_RDONLY));
    PFD("read_0644_root_file", open("perm/public", O_RDONLY));
    PFD("write_0644_root_file", open("perm/public", O_WRONLY));
    PFD("create_in_0755_root_dir", open("perm/new", O_WRONLY | O_CREAT, 0644));
    P("mkdir_in_0755_root_dir", mkdir("perm/newdir", 0755));
    P("unlink_in_0755_root_dir", unlink("perm/public"));
    P("rename_in_0755_root_dir", rename("perm/public", "perm/public2"));
    P("chmod_root_file", chmod("perm/public", 0777));
    P("chown_root_file", chown("perm/public", opt_nonroot_uid, opt_nonroot_uid));
    P("utimens_explicit_root_file", set_times("perm/public", T_OLD, T_OLD, 0));
    P("utimens_now_root_file", utimensat(AT_FDCWD, "perm/public", NULL, 0));
    P("truncate_root_file", truncate("perm/public", 0));
    P("stat_in_0700_root_dir", stat("perm/private/x", &st));
    P("opendir_0700_root_dir", open("perm/private", O_RDONLY | O_DIRECTORY));
    P("setxattr_root_file", setxattr("perm/public", "user.x", "1", 1, 0));
    P("access_w_root_file", access("perm/public", W_OK));
    P("unlink_in_sticky_dir", unlink("perm/sticky/roots"));
    /* Where the caller may create, the new file belongs to the caller. */
    fd = open("perm/open/mine", O_WRONLY | O_CREAT | O_EXCL, 0640);
    if (fd < 0) {
      emit("perm.create_in_0777_dir", "%s", ename(errno));
    } else {
      struct stat ms;
      int wr = write(fd, "mine", 4);
      fstat(fd, &ms);
      close(fd);
      emit("perm.create_in_0777_dir", "ok owner_is_caller=%d mode=%04o wrote=%d",
           ms.st_uid == (uid_t)opt_nonroot_uid && ms.st_gid == (gid_t)opt_nonroot_uid, ms.st_mode & 07777, wr);
    }
    if (mkdir("perm/open/mydir", 0750) < 0) {
      emit("perm.mkdir_in_0777_dir", "%s", ename(errno));
    } else {
      struct stat ds;
      stat("perm/open/mydir", &ds);
      emit("perm.mkdir_in_0777_dir", "ok owner_is_caller=%d mode=%04o",
           ds.st_uid == (uid_t)opt_nonroot_uid && ds.st_gid == (gid_t)opt_nonroot_uid, ds.st_mode & 07777);
    }
    P("chmod_own_file", chmod("perm/open/mine", 0600));
    P("chown_own_file_to_root", chown("perm/open/mine", 0, 0));
    P("unlink_own_in_sticky", (put_str("perm/sticky/own", "o") < 0) ? -1 : unlink("perm/sticky/own"));
    (void)b;
#undef P
#undef PFD
    fflush(stdout);
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status)) emit(N, "child_failed status=%d", status);
  /* Seen from root afterwards: the owner the file system recorded. */
  struct stat ms;
  if (stat("perm/open/mine", &ms) == 0)
    emit("perm.owner_seen_by_root", "ok uid_is_caller=%d gid_is_caller=%d", ms.st_uid == (uid_t)opt_nonroot_uid,
         ms.st_gid == (gid_t)opt_nonroot_uid);
  else
    emit("perm.owner_seen_by_root", "%s", ename(errno));
}

/* ====================================================================== */
/* read-only mounts                                                        */
/* ====================================================================== */
static int populate_readonly(void) {
  if (mkdir("ro", 0755) < 0 || mkdir("ro/dir", 0755) < 0 || mkdir("ro/full", 0755) < 0 ||
      put_str("ro/full/x", "x") < 0 || put_str("ro/file", "read-only content\n") < 0 ||
      symlink("file", "ro/link") < 0)
    return -1;
  if (!opt_skip_xattr && setxattr("ro/file", "user.ro", "yes", 3, 0) < 0) return -1;
  return 0;
}

static void c_readonly(const char *N) {
  (void)N;
  struct stat st;
  char b[64];
  int fd;
  /* Reads keep working. */
  ssize_t n = get_file("ro/file", b, sizeof b - 1);
  if (n < 0) emit("ro.read", "%s", ename(errno));
  else {
    b[n] = 0;
    emit("ro.read", "ok content=%s", n == 18 && !memcmp(b, "read-only content\n", 18) ? "match" : "differs");
  }
  struct listing l;
  if (list_dir("ro", &l) < 0) emit("ro.readdir", "%s", ename(errno));
  else {
    char names[128];
    listing_join(&l, names, sizeof names);
    emit("ro.readdir", "ok entries=%s", names);
    listing_free(&l);
  }
  ssize_t rl = readlink("ro/link", b, sizeof b);
  if (rl < 0) emit("ro.readlink", "%s", ename(errno));
  else emit("ro.readlink", "ok %.*s", (int)rl, b);
  if (!opt_skip_xattr) {
    ssize_t g = getxattr("ro/file", "user.ro", b, sizeof b);
    if (g < 0) emit("ro.getxattr", "%s", ename(errno));
    else emit("ro.getxattr", "ok %.*s", (int)g, b);
  }
  /* Every mutating call fails with EROFS. */
#define R(name, call) emit_rc("ro." name, (long)(call))
#define RFD(name, call)                                 \
  do {                                                  \
    fd = (call);                                        \
    emit_rc("ro." name, fd);                            \
    if (fd >= 0) close(fd);                             \
  } while (0)
  RFD("creat", open("ro/new", O_WRONLY | O_CREAT, 0644));
  RFD("open_wronly", open("ro/file", O_WRONLY));
  RFD("open_rdwr", open("ro/file", O_RDWR));
  RFD("open_trunc", open("ro/file", O_RDONLY | O_TRUNC));
  R("mkdir", mkdir("ro/newdir", 0755));
  R("mknod", mknod("ro/fifo", S_IFIFO | 0644, 0));
  R("symlink", symlink("file", "ro/newlink"));
  R("link", link("ro/file", "ro/hard"));
  R("unlink", unlink("ro/file"));
  R("rmdir", rmdir("ro/dir"));
  R("rename", rename("ro/file", "ro/renamed"));
  R("rename_noreplace", renameat2_("ro/file", "ro/renamed", RENAME_NOREPLACE));
  R("rename_exchange", renameat2_("ro/file", "ro/dir", RENAME_EXCHANGE));
  R("chmod", chmod("ro/file", 0600));
  R("chown", chown("ro/file", 1, 1));
  R("truncate", truncate("ro/file", 0));
  R("utimensat", set_times("ro/file", T_OLD, T_OLD, 0));
  R("utimensat_now", utimensat(AT_FDCWD, "ro/file", NULL, 0));
  if (!opt_skip_xattr) {
    R("setxattr", setxattr("ro/file", "user.new", "1", 1, 0));
    R("removexattr", removexattr("ro/file", "user.ro"));
  }
  /* The tree is unchanged afterwards. */
  int intact = stat("ro/file", &st) == 0 && st.st_size == 18 && stat("ro/dir", &st) == 0 &&
               stat("ro/full/x", &st) == 0 && lstat("ro/new", &st) < 0;
  emit("ro.tree_intact", intact ? "ok" : "MISMATCH");
#undef R
#undef RFD
}

/* ====================================================================== */
/* driver                                                                  */
/* ====================================================================== */
struct check {
  const char *name;
  void (*fn)(const char *);
  int xattr; /* skipped by --skip-xattr */
};
static const struct check checks[] = {
    {"statfs", c_statfs, 0},
    {"rw.basic", c_rw_basic, 0},
    {"rw.large", c_rw_large, 0},
    {"rw.big_single_io", c_rw_big_single, 0},
    {"rw.o_direct", c_rw_o_direct, 0},
    {"rw.large_offsets", c_rw_large_offsets, 0},
    {"rw.pread_pwrite", c_rw_pread_pwrite, 0},
    {"rw.write_past_eof", c_rw_write_past_eof, 0},
    {"rw.append", c_rw_append, 0},
    {"rw.truncate", c_rw_truncate, 0},
    {"rw.unlink_while_open", c_rw_unlink_open, 0},
    {"rw.rename_while_open", c_rw_rename_open, 0},
    {"sparse.seek", c_sparse, 0},
    {"sparse.exact", c_sparse_exact, 0},
    {"sparse.all_hole", c_sparse_all_hole, 0},
    {"fallocate.mode0", c_falloc_mode0, 0},
    {"fallocate.keep_size", c_falloc_keep_size, 0},
    {"fallocate.punch_hole", c_falloc_punch, 0},
    {"fallocate.zero_range", c_falloc_zero_range, 0},
    {"rename.across_dirs", c_rename_across, 0},
    {"rename.overwrite", c_rename_overwrite, 0},
    {"rename.noreplace", c_rename_noreplace, 0},
    {"rename.exchange", c_rename_exchange, 0},
    {"rename.whiteout", c_rename_whiteout, 0},
    {"rename.dir_across", c_rename_dir_across, 0},
    {"rename.dir_cases", c_rename_dirs, 0},
    {"rename.same_inode", c_rename_same_inode, 0},
    {"link.hard", c_link, 0},
    {"symlink.basic", c_symlink_basic, 0},
    {"symlink.dangling", c_symlink_dangling, 0},
    {"symlink.loop_long_dir", c_symlink_loop_long, 0},
    {"readdir.small", c_readdir_small, 0},
    {"readdir.big", c_readdir_big, 0},
    {"readdir.seek", c_readdir_seek, 0},
    {"readdir.plus_attrs", c_readdir_plus, 0},
    {"readdir.removed_dir", c_readdir_removed, 0},
    {"readdir.concurrent_unlink", c_readdir_concurrent_unlink, 0},
    {"cache.drop_and_revisit", c_drop_caches, 0},
    {"attr.chmod", c_chmod, 0},
    {"attr.umask", c_umask, 0},
    {"attr.setgid_dir", c_setgid_dir, 0},
    {"attr.chown", c_chown, 0},
    {"attr.utimens", c_utimens, 0},
    {"attr.mtime_updates", c_mtime_updates, 0},
    {"xattr.basic", c_xattr, 1},
    {"xattr.more", c_xattr_more, 1},
    {"mmap.shared_write", c_mmap_shared, 0},
    {"mmap.read_private", c_mmap_read_private, 0},
    {"lock.flock", c_flock, 0},
    {"lock.posix", c_posix_lock, 0},
    {"sync.fsync", c_sync, 0},
    {"append.two_fds", c_append_two_fds, 0},
    {"append.two_procs", c_append_two_procs, 0},
    {"names.unicode", c_names_unicode, 0},
    {"names.long", c_names_long, 0},
    {"special.nodes", c_special, 0},
    {"misc.access", c_access, 0},
    {"misc.copy_file_range", c_copy_file_range, 0},
    {"errno", c_errno, 0},
    {"perm", c_perm, 0},
};

/* --only takes comma-separated name prefixes. */
static int selected(const char *name) {
  for (const char *p = opt_only; *p;) {
    size_t n = strcspn(p, ",");
    if (n && !strncmp(name, p, n)) return 1;
    p += n + (p[n] == ',');
  }
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: posix-battery [--timing] [--skip-xattr] [--skip-nonroot] [--nonroot-uid N] [--as-uid N]\n"
          "                     [--readdir-count N]\n"
          "                     [--only P1,P2,...] [--populate-readonly | --expect-readonly] DIR\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--skip-xattr")) opt_skip_xattr = 1;
    else if (!strcmp(a, "--timing")) opt_timing = 1;
    else if (!strcmp(a, "--skip-nonroot")) opt_skip_nonroot = 1;
    else if (!strcmp(a, "--populate-readonly")) opt_populate_ro = 1;
    else if (!strcmp(a, "--expect-readonly")) opt_expect_ro = 1;
    else if (!strcmp(a, "--nonroot-uid") && i + 1 < argc) opt_nonroot_uid = atoi(argv[++i]);
    else if (!strcmp(a, "--as-uid") && i + 1 < argc) opt_as_uid = atoi(argv[++i]);
    else if (!strcmp(a, "--readdir-count") && i + 1 < argc) opt_readdir_count = atoi(argv[++i]);
    else if (!strcmp(a, "--only") && i + 1 < argc) opt_only = argv[++i];
    else if (a[0] == '-') usage();
    else if (!dir) dir = a;
    else usage();
  }
  if (!dir || opt_readdir_count < 1 || opt_nonroot_uid < 1) usage();
  if (chdir(dir) < 0) {
    fprintf(stderr, "posix-battery: cannot enter %s: %s\n", dir, strerror(errno));
    return 2;
  }
  umask(022);
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  if (opt_as_uid > 0) {
    if (chown(".", opt_as_uid, opt_as_uid) < 0 || setgroups(0, NULL) < 0 || setresgid(opt_as_uid, opt_as_uid, opt_as_uid) < 0 ||
        setresuid(opt_as_uid, opt_as_uid, opt_as_uid) < 0) {
      fprintf(stderr, "posix-battery: cannot become uid %d in %s: %s\n", opt_as_uid, dir, strerror(errno));
      return 2;
    }
  }
  if (opt_expect_ro) {
    c_readonly("ro");
    return 0;
  }
  struct listing l;
  if (list_dir(".", &l) < 0 || l.n != 0) {
    fprintf(stderr, "posix-battery: %s must be an empty directory\n", dir);
    return 2;
  }
  if (opt_populate_ro) {
    if (populate_readonly() < 0) {
      fprintf(stderr, "posix-battery: populating %s failed: %s\n", dir, strerror(errno));
      return 2;
    }
    return 0;
  }
  for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
    const struct check *c = &checks[i];
    if (opt_only && !selected(c->name)) continue;
    if (c->xattr && opt_skip_xattr) {
      emit(c->name, "skipped");
      continue;
    }
    if (!strcmp(c->name, "perm") && opt_skip_nonroot) {
      emit("perm", "skipped");
      continue;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    c->fn(c->name);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Durations go to stderr only: stdout stays comparable. */
    if (opt_timing)
      fprintf(stderr, "%-28s %8.1f ms\n", c->name, (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
  }
  fflush(stdout);
  return 0;
}
