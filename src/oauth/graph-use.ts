import { type Kysely, sql } from 'kysely'
import type { DB } from '../db/index.ts'
import { invalid } from '../errors.ts'
import { type GraphPermission, type ProviderSpec, providers, type TokenResource } from './providers.ts'

/** The Graph permission each direction needs: sendMail, and delta + $value + PATCH isRead (permissions-reference). */
export const GRAPH_PERMISSION = { outgoing: 'Mail.Send', incoming: 'Mail.ReadWrite' } as const satisfies Record<'outgoing' | 'incoming', GraphPermission>

/** The token a server of this direction and transport presents: Graph's for its permission, else Exchange Online's. */
export const tokenResource = (kind: keyof typeof GRAPH_PERMISSION, transport: string): TokenResource =>
  transport === 'graph' ? { graph: GRAPH_PERMISSION[kind] } : 'outlook'

/** The authentications whose provider has Microsoft Graph, for messages ("outlook" or "outlook_app"). */
const graphAuthentications = (): string => Object.values(providers).filter((p) => p.graph).map((p) => `"${p.id}"`).join(' or ')

/**
 * A server's transport: Graph only for a provider that has it (400 naming the field otherwise). `plain`: the
 * direction's own protocol ("smtp", "imap"), the default.
 */
export function checkTransport<T extends string>(p: ProviderSpec | undefined, transport: T | 'graph', plain: T): T | 'graph' {
  if (transport !== 'graph') return transport
  if (!p?.graph) {
    throw invalid('transport', `transport "graph" (Microsoft Graph) needs authentication ${graphAuthentications()}; ${p ? `${p.label}` : 'this authentication'} sends and fetches with "${plain}".`)
  }
  return transport
}

/**
 * The Graph permissions a mailbox's servers need: Mail.Send when one of its outgoing servers sends through Graph,
 * Mail.ReadWrite when one of its incoming servers fetches through Graph. One consent per mailbox asks for them
 * beside the Outlook scopes, so every server of the mailbox is served by it.
 */
export async function graphPermissionsOf(db: Kysely<DB>, p: ProviderSpec, mailbox: string): Promise<GraphPermission[]> {
  if (!p.graph) return []
  const key = mailbox.toLowerCase()
  const uses = async (table: 'outgoing_servers' | 'incoming_servers') =>
    (await db
      .selectFrom(table)
      .select('id')
      .where('authentication', '=', p.id)
      .where('transport', '=', 'graph')
      .where(sql<string>`lower(username)`, '=', key)
      .limit(1)
      .executeTakeFirst()) !== undefined
  const out: GraphPermission[] = []
  if (await uses('outgoing_servers')) out.push(GRAPH_PERMISSION.outgoing)
  if (await uses('incoming_servers')) out.push(GRAPH_PERMISSION.incoming)
  return out
}

/** The consent of this mailbox does not cover a Graph permission its server needs: only a new consent helps. */
export const graphConsentMissing = (mailbox: string, p: ProviderSpec, r: Exclude<TokenResource, 'outlook'>): string =>
  `${mailbox} was connected without the Microsoft Graph permission ${r.graph} (Microsoft answers AADSTS65001, consent required): ` +
  `click Reconnect your ${p.label} account and accept it (the app registration in Azure needs the delegated Microsoft Graph permission ${r.graph}).`
