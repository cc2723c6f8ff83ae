// Layer: fs (backend factory). Builds a FileSystem from a plain, structured-
// cloneable description, so a transport can pass the description to the
// worker thread that owns the backend. Imports fs/ backends and fuse/filesystem.ts only.
import type { FileSystem } from '../fuse/filesystem.ts';
import type { BackendSpec } from './backend-spec.ts';

export type { BackendKind, BackendSpec, CacheMode } from './backend-spec.ts';

/** Backends are imported on demand: a memory mount never loads passthrough's libc bindings. */
export async function createFileSystem(spec: BackendSpec): Promise<FileSystem> {
  switch (spec.kind) {
    case 'passthrough': {
      if (!spec.sharedDir) throw new Error('the passthrough backend needs a shared directory');
      const { PassthroughFs } = await import('./passthrough/passthrough-fs.ts');
      return new PassthroughFs(spec.sharedDir, {
        readonly: spec.readonly,
        cache: spec.cache,
        xattr: spec.xattr,
        writeback: spec.writeback,
      });
    }
    case 'memory': {
      const { MemoryFs } = await import('./memory/memory-fs.ts');
      const options = { readonly: spec.readonly, cache: spec.cache };
      return spec.sharedDir ? MemoryFs.fromHostDirectory(spec.sharedDir, options) : new MemoryFs(options);
    }
    default:
      throw new Error(`unknown backend '${(spec as { kind: string }).kind}'`);
  }
}
