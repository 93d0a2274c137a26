/**
 * Test Connection for a server whose transport is Microsoft Graph: prove what can be proven without sending mail,
 * and say what was proven. A token for Graph (delegated: its consent carries the server's permission; app-only: a
 * client-credentials token in the tenant), then the mailbox reached through Graph: its folder read for an incoming
 * server, its Inbox asked for by an outgoing one (Mail.Send alone may not read it, but Graph still answers whether
 * the mailbox exists and whether an application access policy lets the app in).
 * @see https://learn.microsoft.com/graph/api/mailfolder-get (GET /me/mailFolders/inbox, /users/{id}/mailFolders/inbox)
 * @see https://learn.microsoft.com/graph/auth-limit-mailbox-access (403 ErrorAccessDenied from an application access policy)
 * @see https://learn.microsoft.com/graph/permissions-reference (Mail.Send, Mail.ReadWrite)
 */
import type { Logger } from '../log.ts'
import type { CredentialService } from '../oauth/credentials.ts'
import { GRAPH_PERMISSION, tokenResource } from '../oauth/graph-use.ts'
import type { ProviderSpec } from '../oauth/providers.ts'
import { useToken } from '../oauth/token-use.ts'
import { GraphRequestError, graphRequest, mailboxUrl, type GraphTarget } from './graph-request.ts'
import { folderId } from './graph-read.ts'
import { graphVerdict } from './verdict.ts'

export interface GraphProbe {
  credentials: Pick<CredentialService, 'accessToken' | 'recordUseSuccess' | 'recordUseFailure' | 'client'>
  provider: ProviderSpec
  account: { mailbox: string; tenant: string | null }
  direction: 'outgoing' | 'incoming'
  /** The incoming server's folder ("INBOX", "Inbox/Orders"); outgoing servers look at the Inbox. */
  folder: string
  log: Logger
}

export interface GraphProbeResult {
  ok: boolean
  message: string
}

/** What reaching the mailbox showed: a folder read, or (sending) the mailbox there but not readable with Mail.Send. */
type Reached = { read: true; folder: string; messages: number } | { read: false }

const POLICY = /AccessPolicy|RAOP/i

export async function probeGraph(o: GraphProbe): Promise<GraphProbeResult> {
  const { provider: p, account, direction } = o
  const mailbox = account.mailbox
  const permission = GRAPH_PERMISSION[direction]
  const delegated = p.graph?.kind === 'delegated'
  let host = 'Microsoft Graph'
  try {
    const endpoint = (await o.credentials.client(p, { tenant: account.tenant })).endpoints.graph
    if (!endpoint) return { ok: false, message: `Connection Test Failed: ${p.label} has no Microsoft Graph; choose transport "${direction === 'outgoing' ? 'smtp' : 'imap'}".` }
    host = new URL(endpoint).host
    const reached = await useToken({
      credentials: o.credentials,
      provider: p,
      account,
      log: o.log,
      peer: host,
      resource: tokenResource(direction, 'graph'),
      // A new token: the test must exercise the client secret and the consent, not a token cached an hour ago.
      renew: true,
      attempt: (token) => reach({ endpoint, token, mailbox, delegated }, o),
      refused: (e) => graphVerdict(e).kind === 'refused',
      explain: (e) => explainGraphFailure(o, host, e),
    })
    const token = delegated ? `a delegated token with ${permission}` : 'an app-only token in the tenant'
    const seen = reached.read
      ? `${mailbox}'s folder ${reached.folder} (${reached.messages} messages) was read through ${host}`
      : `${host} found ${mailbox} and let the token in (Mail.Send does not read mail, so no folder was opened)`
    const unproven = direction === 'outgoing'
      ? ' No mail was sent: whether Exchange accepts mail from this mailbox shows with the first one.'
      : delegated ? '' : ' Marking messages read needs the Mail.ReadWrite application permission; it shows with the first fetch.'
    o.log.info({ host, read: reached.read }, 'Graph connection test succeeded')
    return { ok: true, message: `Connection Test Successful! Microsoft Graph gave ${token}, and ${seen}.${unproven}` }
  } catch (e) {
    const message = explainGraphFailure(o, host, e)
    o.log.warn({ cause: (e as Error).message }, 'Graph connection test failed')
    return { ok: false, message }
  }
}

async function reach(t: GraphTarget, o: GraphProbe): Promise<Reached> {
  if (o.direction === 'incoming') {
    const id = await folderId(t, o.folder)
    const res = await graphRequest(t, `${mailboxUrl(t)}/mailFolders/${encodeURIComponent(id)}?$select=displayName,totalItemCount`, { step: `open the folder ${o.folder}` })
    const folder = (await res.json()) as { displayName?: string; totalItemCount?: number }
    return { read: true, folder: folder.displayName ?? o.folder, messages: folder.totalItemCount ?? 0 }
  }
  try {
    const res = await graphRequest(t, `${mailboxUrl(t)}/mailFolders/inbox?$select=displayName,totalItemCount`, { step: 'find the mailbox' })
    const inbox = (await res.json()) as { displayName?: string; totalItemCount?: number }
    return { read: true, folder: inbox.displayName ?? 'Inbox', messages: inbox.totalItemCount ?? 0 }
  } catch (e) {
    // Graph resolves the mailbox (404 when unknown, 403 from an access policy) before it checks the permission: a
    // plain access denied means the mailbox is there and the token got in, only not to read.
    if (e instanceof GraphRequestError && e.status === 403 && e.code === 'ErrorAccessDenied' && !POLICY.test(e.graphMessage)) return { read: false }
    throw e
  }
}

/** A failure of the probe as what the admin must do, naming the mailbox, Graph's host and Graph's own words. */
export function explainGraphFailure(o: Pick<GraphProbe, 'provider' | 'account' | 'direction' | 'folder'>, host: string, e: unknown): string {
  const mailbox = o.account.mailbox
  const permission = GRAPH_PERMISSION[o.direction]
  const delegated = o.provider.graph?.kind === 'delegated'
  if (!(e instanceof GraphRequestError)) return `Connection Test Failed for ${mailbox}: ${(e as Error).message}`
  const said = `(${e.status ? `${e.status} ` : ''}${e.code}: ${e.graphMessage})`
  if (e.status === 0) return `Connection Test Failed: Microsoft Graph at ${host} could not be reached for ${mailbox} ${said}. Check the parameter microsoft_graph.endpoint.`
  if (e.status === 401) {
    return `Connection Test Failed: ${host} refused the Graph token for ${mailbox} ${said}. Check that microsoft_graph.endpoint is the Graph of your Microsoft cloud${delegated ? ', then Reconnect' : ''}.`
  }
  if (e.status === 403 && POLICY.test(e.graphMessage)) {
    return (
      `Connection Test Failed: an application access policy in Exchange Online keeps the app from ${mailbox} ${said}. ` +
      `Add ${mailbox} to the mail-enabled security group of the policy (New-ApplicationAccessPolicy; check with Test-ApplicationAccessPolicy -Identity ${mailbox} -AppId <client id>), or grant the app this mailbox with RBAC for Applications.`
    )
  }
  if (e.status === 403) {
    return delegated
      ? `Connection Test Failed: Microsoft Graph denied ${mailbox} access ${said}. The account that consented must be ${mailbox}, with the delegated permission ${permission}; Reconnect and accept it.`
      : `Connection Test Failed: Microsoft Graph denied the app access to ${mailbox} ${said}. Grant the app the application permission ${permission} of Microsoft Graph, with admin consent (Azure → the app → API permissions).`
  }
  if (e.status === 404 && e.code === 'folder_not_found') return `Connection Test Failed: ${e.graphMessage.replace('this mailbox', mailbox)} Check the folder name (Inbox, or a path such as Inbox/Orders).`
  if (e.status === 404) {
    return `Connection Test Failed: Microsoft Graph does not know the mailbox ${mailbox} ${said}. Check the Username: it must be a mailbox in Exchange Online (not on-premises) of this tenant.`
  }
  return `Connection Test Failed: ${e.message}`
}
