import type { Migration } from 'kysely'
import * as m0001 from './0001-spine.ts'

/** Every migration, by name; they run in name order (kysely's Migrator sorts them). */
export const migrations: Record<string, Migration> = {
  '0001-spine': m0001,
}
