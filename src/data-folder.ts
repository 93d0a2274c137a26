import { chmodSync, closeSync, fchmodSync, mkdirSync, openSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

/**
 * The data folder holds every fetched mail (the SQLite file) and the key to every stored secret: only the
 * account Mailbridge runs as may read it, whatever the umask.
 */
const PRIVATE_FOLDER = 0o700
const PRIVATE_FILE = 0o600

/** `mkdir -p`, each folder it creates 0700 (chmod too: mkdir's mode passes through the umask). */
export function makePrivateFolder(dir: string): void {
  const first = mkdirSync(dir, { recursive: true, mode: PRIVATE_FOLDER })
  if (!first) return
  for (let d = resolve(dir); ; d = dirname(d)) {
    chmodSync(d, PRIVATE_FOLDER)
    if (d === resolve(first)) return
  }
}

/**
 * Create the SQLite file empty and 0600 before SQLite opens it: SQLite creates a new file 0644 less the umask, and
 * gives the -wal and -shm files it adds later the database file's mode. An existing file is left as it is.
 */
export function createPrivateFile(path: string): void {
  let fd
  try {
    fd = openSync(path, 'wx', PRIVATE_FILE)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return
    throw e
  }
  try {
    fchmodSync(fd, PRIVATE_FILE)
  } finally {
    closeSync(fd)
  }
}

export interface OpenToOthers {
  path: string
  /** Octal, as `ls -l` and chmod spell it: "755". */
  mode: string
}

/** The SQLite file and the two SQLite adds beside it in WAL mode, for a `sqlite:<path>` URL. */
export function sqliteFiles(databaseUrl: string): string[] {
  if (!databaseUrl.startsWith('sqlite:') || databaseUrl === 'sqlite::memory:') return []
  const path = databaseUrl.slice('sqlite:'.length)
  return [dirname(path), path, `${path}-wal`, `${path}-shm`]
}

/**
 * Those of these paths that exist and that another account may read. They are reported, not tightened: a
 * folder that already exists is the operator's (a volume, a folder shared on purpose with a backup agent's
 * group), and changing its modes on every start would undo their choice unseen.
 */
export function openToOthers(paths: string[]): OpenToOthers[] {
  const out: OpenToOthers[] = []
  for (const path of new Set(paths.map((p) => resolve(p)))) {
    const mode = modeOf(path)
    if (mode !== undefined && mode & 0o077) out.push({ path, mode: mode.toString(8) })
  }
  return out
}

function modeOf(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o777
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
}
