// Layer: fs (types and constants only, no backend code). The plain,
// structured-cloneable description of a backend that create.ts builds. Kept
// apart so the CLI and the transport's control thread can name backends
// without loading them.

export type BackendKind = 'passthrough' | 'memory';
export type CacheMode = 'never' | 'auto' | 'always';
export const BACKEND_KINDS: readonly BackendKind[] = ['passthrough', 'memory'];
export const CACHE_MODES: readonly CacheMode[] = ['never', 'auto', 'always'];

export interface BackendSpec {
  kind: BackendKind;
  /** passthrough: the directory to share. memory: a host tree to copy in at start (absent: empty). */
  sharedDir?: string;
  readonly: boolean;
  cache: CacheMode;
  xattr: boolean;
  writeback: boolean;
}
