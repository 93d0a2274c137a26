import type { Secret } from '../crypto/secret.ts'
import type { OutgoingServerRow } from '../db/schema.ts'
import { MailbridgeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { sendSeconds } from '../metrics.ts'
import { accountOf } from '../oauth/credentials.ts'
import { ProviderError } from '../oauth/protocol.ts'
import { providerFor } from '../oauth/providers.ts'
import { type TokenSource, useToken } from '../oauth/token-use.ts'
import type { Accepted, ComposedMail, MailTransport, Verdict } from './mail-transport.ts'

/** Where a mail may go: one of its server's connection slots (the worker's), or when to try it instead. */
export interface Connections {
  /** A slot to submit on now, or when the mail may be tried (ISO): its server paused here, or no slot is held. */
  take(): { slot: number } | { wait: string }
  /** The submission on this slot is over. */
  give(slot: number): void
}

/** How one submission ended: taken, a verdict, not attempted (`wait`), or no usable token (`token`). */
export type Submitted = Accepted | Verdict | { kind: 'wait'; until: string } | { kind: 'token'; error: Error }

/** A submission that ended otherwise than accepted, carried through useToken: only `refused` is worth a refresh. */
class NotAccepted extends Error {
  constructor(readonly result: Verdict | { kind: 'wait'; until: string }) {
    super(result.kind === 'wait' ? 'not attempted' : result.reason)
  }
}

/** A connection closed under a mail before it was submitted is tried on another this many times. */
const CLOSED_RETRIES = 3

/**
 * Submit one mail through its server's transport. An OAuth server's token goes through the one token-use step
 * (oauth/token-use.ts): a token the server refuses is refreshed once and the mail tried again, and only an
 * accepted mail proves the token. Nothing here decides retries: the transport's verdict says what happened and
 * the outcomes (outcomes.ts) what follows. The mail is composed once, at its first attempt, after its token
 * is known good to ask for: a dead token keeps the mail queued without reading its content.
 */
export async function submitMail(o: {
  transport: MailTransport
  credentials: TokenSource
  server: OutgoingServerRow
  log: Logger
  compose: () => Promise<ComposedMail>
  connections: Connections
}): Promise<Submitted> {
  let message: ComposedMail | undefined
  const attempt = async (token?: Secret): Promise<Accepted | Verdict | { kind: 'wait'; until: string }> => {
    message ??= await o.compose()
    for (let closed = 0; ; closed++) {
      const c = o.connections.take()
      if ('wait' in c) return { kind: 'wait', until: c.wait }
      const started = performance.now()
      const r = await o.transport.send(o.server, message, { slot: c.slot, token }).finally(() => o.connections.give(c.slot))
      // Closed under the mail: the server paused here (take() says until when) or this node's connections changed.
      if (r.kind === 'closed' && closed < CLOSED_RETRIES) continue
      sendSeconds.observe({ outcome: r.kind === 'accepted' ? 'sent' : r.kind === 'transient' ? 'deferred' : 'failed' }, (performance.now() - started) / 1000)
      return r
    }
  }
  const p = providerFor(o.server.authentication)
  if (!p) return attempt()
  try {
    return await useToken({
      credentials: o.credentials,
      provider: p,
      account: accountOf(o.server),
      log: o.log,
      peer: `${o.server.host}:${o.server.port}`,
      async attempt(token) {
        const r = await attempt(token)
        if (r.kind !== 'accepted') throw new NotAccepted(r)
        return r
      },
      refused: (e) => e instanceof NotAccepted && e.result.kind === 'refused',
      explain: (e) => (e as NotAccepted).message,
    })
  } catch (e) {
    if (e instanceof NotAccepted) return e.result
    // No token to present (a dead refresh token, an unreachable provider, a mailbox never connected): it waits.
    if (e instanceof ProviderError || (e instanceof MailbridgeError && e.code === 'token_error')) return { kind: 'token', error: e }
    throw e
  }
}
