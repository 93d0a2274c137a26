/**
 * Read a mailbox folder through Microsoft Graph: its id by name, its changes by delta query (paged, ending in a
 * deltaLink to keep for the next round), each message's MIME, and marking a message read.
 * @see https://learn.microsoft.com/graph/delta-query-messages (rounds, nextLink, deltaLink, Prefer odata.maxpagesize)
 * @see https://learn.microsoft.com/graph/delta-query-overview (410 Gone: synchronize again from the start)
 * @see https://learn.microsoft.com/graph/outlook-get-mime-message (GET /messages/{id}/$value)
 * @see https://learn.microsoft.com/graph/api/message-update (PATCH isRead)
 * @see https://learn.microsoft.com/graph/api/user-list-mailfolders (well-known names; $filter on displayName)
 */
import { GraphRequestError, graphRequest, mailboxUrl, type GraphTarget } from './graph-request.ts'

/** A message of a delta page: added or changed, or gone from the folder. */
export interface DeltaMessage {
  id: string
  removed: boolean
  internetMessageId?: string
  isRead?: boolean
  receivedDateTime?: string
}

export interface DeltaPage {
  messages: DeltaMessage[]
  /** more pages in this round */
  nextLink?: string
  /** the round is over: keep this for the next one */
  deltaLink?: string
  /** this round started over because the kept deltaLink had expired (410): it lists the whole folder again */
  resync: boolean
}

const SELECT = 'id,internetMessageId,isRead,receivedDateTime'
/** Well-known folder names answer without a lookup (user-list-mailfolders; mailfolder resource). */
const WELL_KNOWN = new Set(['inbox', 'drafts', 'sentitems', 'deleteditems', 'junkemail', 'archive', 'outbox', 'clutter', 'conversationhistory', 'msgfolderroot', 'recoverableitemsdeletions', 'scheduled', 'searchfolders', 'serverfailures', 'syncissues'])

/**
 * The pages of one delta round of a folder: from `deltaLink` (the last round's) or, without one, the whole folder.
 * A deltaLink Graph no longer knows (410) starts the round over, each page then saying `resync`.
 */
export async function* delta(t: GraphTarget, folderId: string, deltaLink?: string, o: { pageSize?: number } = {}): AsyncGenerator<DeltaPage> {
  const start = `${mailboxUrl(t)}/mailFolders/${encodeURIComponent(folderId)}/messages/delta?$select=${SELECT}`
  let link = deltaLink ?? start
  let resync = false
  for (;;) {
    let page: Record<string, unknown>
    try {
      page = await deltaPage(t, link, o.pageSize)
    } catch (e) {
      if (!(e instanceof GraphRequestError) || e.status !== 410 || resync || link !== deltaLink) throw e
      link = start
      resync = true
      continue
    }
    const value = Array.isArray(page.value) ? (page.value as Array<Record<string, unknown>>) : []
    const messages = value.filter((v) => typeof v.id === 'string').map((v): DeltaMessage => ({
      id: v.id as string,
      removed: v['@removed'] !== undefined,
      internetMessageId: typeof v.internetMessageId === 'string' ? v.internetMessageId : undefined,
      isRead: typeof v.isRead === 'boolean' ? v.isRead : undefined,
      receivedDateTime: typeof v.receivedDateTime === 'string' ? v.receivedDateTime : undefined,
    }))
    const nextLink = typeof page['@odata.nextLink'] === 'string' ? page['@odata.nextLink'] : undefined
    const newDelta = typeof page['@odata.deltaLink'] === 'string' ? page['@odata.deltaLink'] : undefined
    yield { messages, nextLink, deltaLink: newDelta, resync }
    if (!nextLink) return
    link = nextLink
  }
}

async function deltaPage(t: GraphTarget, link: string, pageSize?: number): Promise<Record<string, unknown>> {
  const res = await graphRequest(t, link, { step: 'delta', headers: pageSize ? { prefer: `odata.maxpagesize=${pageSize}` } : {} })
  return (await res.json()) as Record<string, unknown>
}

/** The message's MIME, as Exchange holds it. */
export async function messageMime(t: GraphTarget, id: string): Promise<Buffer> {
  const res = await graphRequest(t, `${mailboxUrl(t)}/messages/${encodeURIComponent(id)}/$value`, { step: 'read the message' })
  return Buffer.from(await res.arrayBuffer())
}

export async function markRead(t: GraphTarget, id: string): Promise<void> {
  await graphRequest(t, `${mailboxUrl(t)}/messages/${encodeURIComponent(id)}`, { method: 'PATCH', contentType: 'application/json', body: '{"isRead":true}', step: 'mark the message read' })
}

/**
 * The id of a folder named like an IMAP path, `Inbox` or `Inbox/Orders`: a well-known name answers directly, other
 * names are looked up by displayName among the top-level folders, then among each folder's childFolders.
 */
export async function folderId(t: GraphTarget, path: string): Promise<string> {
  const names = path.split('/').map((s) => s.trim()).filter(Boolean)
  if (!names.length) names.push('inbox')
  let id: string | undefined
  for (const [i, name] of names.entries()) {
    if (i === 0 && WELL_KNOWN.has(name.toLowerCase())) {
      const res = await graphRequest(t, `${mailboxUrl(t)}/mailFolders/${encodeURIComponent(name.toLowerCase())}`, { step: `find the folder ${name}` })
      id = ((await res.json()) as { id: string }).id
      continue
    }
    const parent = id === undefined ? `${mailboxUrl(t)}/mailFolders` : `${mailboxUrl(t)}/mailFolders/${encodeURIComponent(id)}/childFolders`
    const filter = encodeURIComponent(`displayName eq '${name.replace(/'/g, "''")}'`)
    const res = await graphRequest(t, `${parent}?$filter=${filter}&$select=id,displayName`, { step: `find the folder ${name}` })
    const found = ((await res.json()) as { value?: Array<{ id: string }> }).value?.[0]
    if (!found) throw new GraphRequestError(404, 'folder_not_found', `No folder "${names.slice(0, i + 1).join('/')}" in this mailbox.`, t.mailbox, `find the folder ${path}`, new URL(parent).host)
    id = found.id
  }
  return id as string
}
