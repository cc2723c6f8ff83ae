// Layer: fs (passthrough backend). DAX: which host fd a FUSE_SETUPMAPPING may
// map (FileSystem.withMappableFd). Imports fuse/ errors, sys/ (syscalls,
// fd-flags) and ./handle-table.ts, ./inode-store.ts types.
//
// Rules (the window checks themselves live in fuse/dax.ts):
// - only regular files are mapped (EINVAL otherwise: never a device or FIFO);
// - with an fh: it must be a file handle we gave out for this very node
//   (EBADF otherwise); its fd is lent as is (SCM_RIGHTS gives the frontend a
//   copy, so nothing is dup'ed); a writable mapping of a handle opened
//   read-only, or any mapping of a write-only one, is EACCES, as mmap(2)
//   itself answers for a MAP_SHARED PROT_WRITE map of an fd without write access;
// - without an fh (what Linux sends: fh = -1) the inode is opened for the call,
//   O_RDWR for a writable mapping (EROFS on a --readonly share), O_RDONLY
//   otherwise, and closed right after the frontend has its copy.
import { constants } from 'node:os';
import { FsError } from '../../fuse/errors.ts';
import { fdStatusFlags } from '../../sys/fd-flags.ts';
import * as sys from '../../sys/syscalls.ts';
import type { OpenHandle } from './handle-table.ts';
import type { Inode } from './inode-store.ts';

const E = constants.errno;

export function lendMappableFd(
  inode: Inode,
  fh: number | undefined,
  handle: OpenHandle | undefined,
  writable: boolean,
  readonly: boolean,
  reopen: (inode: Inode, flags: number) => number,
  use: (fd: number) => void,
): void {
  if (inode.type !== sys.S_IFREG) throw new FsError(E.EINVAL, `node ${inode.nodeid} is not a regular file: nothing to map`);
  if (fh !== undefined) {
    if (handle === undefined || handle.inode !== inode || handle.dir !== null) throw new FsError(E.EBADF, `file handle ${fh} is not an open file of node ${inode.nodeid}`);
    const mode = fdStatusFlags(handle.fd) & sys.O_ACCMODE;
    if (mode === sys.O_WRONLY || (writable && mode === sys.O_RDONLY)) {
      throw new FsError(E.EACCES, `file handle ${fh} was opened ${mode === sys.O_WRONLY ? 'write-only' : 'read-only'}: no ${writable ? 'writable' : 'readable'} mapping`);
    }
    use(handle.fd);
    return;
  }
  if (writable && readonly) throw new FsError(E.EROFS, 'writable mapping on a read-only share');
  const fd = reopen(inode, (writable ? sys.O_RDWR : sys.O_RDONLY) | sys.O_CLOEXEC);
  try {
    use(fd);
  } finally {
    sys.close(fd);
  }
}
