/** The settings whose values are secrets, sealed as `settings.<key>`. */
export const SECRET_SETTINGS = ['microsoft_outlook_client_secret', 'google_gmail_client_secret'] as const

/** One column whose values are sealed by SecretBox, and the context (additional data) each value is bound to. */
export interface SealedColumn {
  table: string
  column: string
  /** The primary key: batches walk it in order, and each re-seal names its row by it. */
  key: string
  context: (key: string) => string
  /** Only these rows hold sealed values (the settings table is a key → value list). */
  only?: readonly string[]
}

const fixed = (table: string, column: string, key = 'id'): SealedColumn => ({ table, column, key, context: () => `${table}.${column}` })

/**
 * Every place a sealed value is stored. `mailbridge rotate-key` re-seals exactly these, so a new sealed column
 * must join this list: test/security/rotate-key.test.ts fails when a sealed value turns up anywhere else.
 */
export const SEALED_COLUMNS: readonly SealedColumn[] = [
  { table: 'settings', column: 'value', key: 'key', context: (key) => `settings.${key}`, only: SECRET_SETTINGS },
  fixed('credentials', 'refresh_token'),
  fixed('credentials', 'access_token'),
  fixed('outgoing_servers', 'password'),
  fixed('webhooks', 'secret'),
  fixed('oauth_states', 'code_verifier', 'state_hash'),
  fixed('sign_ins', 'device_code'),
]
