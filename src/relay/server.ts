/**
 * The SMTP relay for legacy applications (issue 8): printers, scanners and old applications that can only
 * send with a password submit here; every accepted message enters the same durable queue as API mail and leaves
 * through an OAuth-connected mailbox.
 *
 * Never an open relay: every transaction needs AUTH (530 otherwise), AUTH needs TLS (STARTTLS, RFC 3207, or
 * implicit TLS, RFC 8314) unless MAILBRIDGE_RELAY_INSECURE_LOCALHOST allows it from the loopback interface, and
 * an optional IP allow-list is checked before the greeting.
 * @see https://www.rfc-editor.org/rfc/rfc6409 (message submission)
 * @see https://www.rfc-editor.org/rfc/rfc4954 (SMTP AUTH, reply codes §6)
 */
import { isIP, type BlockList } from 'node:net'
import { hostname } from 'node:os'
import type { Readable } from 'node:stream'
import type { SMTPServer, SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerSession } from 'smtp-server'
import { parseAddressList } from '../address-list.ts'
import type { Config } from '../config.ts'
import { Secret } from '../crypto/secret.ts'
import { newId } from '../db/index.ts'
import { MailbridgeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { isEmailAddress } from '../mail-address.ts'
import { relayAuthFailures, relayMailsAccepted, relayMailsRefused, relaySessions } from '../metrics.ts'
import { messageIdFor, type MailService } from '../outgoing/mail-service.ts'
import { megabytes, mimeSizeOf } from '../outgoing/mail-size.ts'
import { readRawMail } from '../outgoing/raw-message.ts'
import { ConnectionCaps } from './connection-caps.ts'
import { RelayServer, type ConversationRules } from './conversation.ts'
import { checkHeaders, normaliseHeaderLineEnds } from './header-checks.ts'
import { loadRelayTls } from './tls.ts'
import { senderAllowed, type RelayUser, type RelayUserService } from './users.ts'

/** Exchange Online accepts at most 500 recipients per message; more would only fail later. */
const MAX_RECIPIENTS = 500

export interface Relay {
  /** The STARTTLS port and, when configured, the implicit-TLS port (the real ones, also when 0 was asked). */
  port: number
  tlsPort?: number
  /** Stop accepting, let conversations finish for up to `drainMs`, then cut them with 421. */
  close(): Promise<void>
}

export interface RelayDeps {
  config: Config
  relayUsers: RelayUserService
  mails: MailService
  log: Logger
}

/** An SMTP reply as an error smtp-server sends: the code, then the enhanced status code and text. */
const reply = (code: number, text: string): Error => Object.assign(new Error(text), { responseCode: code })

/** MAILBRIDGE_RELAY_ALLOW: addresses and CIDR ranges, IPv4 or IPv6. */
export const parseAllowList = (entries: string[]): BlockList | undefined => parseAddressList(entries, 'MAILBRIDGE_RELAY_ALLOW')

const family = (address: string) => (isIP(address) === 6 ? 'ipv6' : 'ipv4')
const isLoopback = (address: string) => address === '::1' || /^127\./.test(address)

/** Start the relay listener(s); `port`/`tlsPort` override the configuration (tests pass 0). */
export async function startRelay(deps: RelayDeps, o: { port?: number; tlsPort?: number } = {}): Promise<Relay> {
  const { config, relayUsers, mails } = deps
  const log = deps.log.child({ part: 'relay' })
  const settings = config.relay
  const allow = parseAllowList(settings.allow)
  const tls = loadRelayTls(settings, config.dataDir)
  // MAILBRIDGE_MAX_MAIL_BYTES counts decoded bytes, as the API does; SIZE counts the message as sent (RFC 1870).
  const maxSize = mimeSizeOf(config.maxMailBytes)
  const users = new Map<string, RelayUser>()
  // smtp-server matches proxies by address, not by range: a range in MAILBRIDGE_TRUST_PROXY serves HTTP only.
  const proxies = config.trustProxy.filter((e) => !e.includes('/'))
  const ranges = config.trustProxy.filter((e) => e.includes('/'))
  if (ranges.length) log.warn({ ranges }, 'MAILBRIDGE_TRUST_PROXY: the relay reads the PROXY protocol only from the single addresses listed, not from these ranges')
  const caps = new ConnectionCaps({ total: settings.maxConnections, perAddress: settings.maxConnectionsPerAddress })
  const tooLarge = `5.3.4 The message is larger than ${maxSize} bytes, what a mail of ${megabytes(config.maxMailBytes)} (MAILBRIDGE_MAX_MAIL_BYTES) takes encoded`
  /** A refusal of a mail, counted by its reason. */
  const refuse = (reason: string, code: number, text: string): Error => {
    relayMailsRefused.inc({ reason })
    return reply(code, text)
  }
  const sessionLog = (s: SMTPServerSession) => log.child({ session: s.id, remote: s.remoteAddress, ...(s.user ? { relay_user: users.get(s.id)?.username } : {}) })

  const rules: ConversationRules = {
    // RFC 4954 §4: a password in clear text only over TLS; the local exception is the operator's explicit choice.
    offerAuth: (secure, remote) => secure || (settings.insecureLocalhost && isLoopback(remote)),
    oddHello: (c, verb, given) => log.info({ session: c.id, remote: c.remoteAddress, hello: given.slice(0, 200) }, `relay client sent ${verb} with no single host name; accepted, as Postfix and Exchange do`),
    maxSize,
    tooLarge,
    sizeRefused: (c, declared) => {
      relayMailsRefused.inc({ reason: 'too_large' })
      log.warn({ session: c.id, remote: c.remoteAddress, declared, limit: maxSize }, 'relay mail refused: its SIZE is larger than MAILBRIDGE_MAX_MAIL_BYTES allows')
    },
    commandTimeoutMs: settings.commandTimeoutMs,
    commandTimedOut: (c) => log.warn({ session: c.id, remote: c.remoteAddress }, 'relay connection closed: a command did not arrive whole within MAILBRIDGE_RELAY_COMMAND_TIMEOUT_S'),
  }

  const options = (secure: boolean) => ({
    secure,
    key: tls.key,
    cert: tls.cert,
    name: hostname(),
    banner: 'Mailbridge SMTP relay',
    authMethods: ['PLAIN', 'LOGIN'],
    // smtp-server's switch is global; onAuth narrows it to the loopback interface.
    allowInsecureAuth: settings.insecureLocalhost,
    authOptional: false,
    authRequiredMessage: '5.7.0 Authentication required: log in with your relay user (AUTH PLAIN or LOGIN after STARTTLS)',
    size: maxSize,
    // Mailbridge answers an oversized DATA itself, with the 552 5.3.4 that SIZE gets too (RFC 1870 §6.3).
    rejectOversized: false,
    disableReverseLookup: true,
    // Also bounds the sockets still in a TLS handshake or before their PROXY header; ConnectionCaps counts the rest.
    maxClients: settings.maxConnections,
    socketTimeout: settings.idleTimeoutMs,
    // A listed proxy must start every connection with a PROXY protocol header: the client it names is then the one
    // MAILBRIDGE_RELAY_ALLOW and the AUTH throttle see. Nobody else may name an address.
    useProxy: proxies.length ? proxies : false,
    logger: false,
    closeTimeout: Math.max(1000, config.queue.drainMs),

    onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void) {
      if (allow && !allow.check(session.remoteAddress, family(session.remoteAddress))) {
        sessionLog(session).warn('relay connection refused: the address is not in MAILBRIDGE_RELAY_ALLOW')
        return cb(reply(554, `5.7.1 ${session.remoteAddress} may not use this relay (not in MAILBRIDGE_RELAY_ALLOW)`))
      }
      const over = caps.admit(session.id, session.remoteAddress)
      if (over) {
        sessionLog(session).warn({ cap: over, open: caps.open }, 'relay connection refused: too many connections')
        // 421: the client tries again later (RFC 5321 §4.5.3.1.10 lets a server limit its connections).
        return cb(
          reply(421, over === 'total'
            ? `4.7.0 Too many connections to this relay (MAILBRIDGE_RELAY_MAX_CONNECTIONS=${settings.maxConnections}); try again later`
            : `4.7.0 Too many connections from ${session.remoteAddress} (MAILBRIDGE_RELAY_MAX_CONNECTIONS_PER_ADDRESS=${settings.maxConnectionsPerAddress}); try again later`),
        )
      }
      relaySessions.set(caps.open)
      cb()
    },

    onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void) {
      const slog = sessionLog(session)
      // RFC 4954 §4: a password in clear text only over TLS; the local exception is the operator's explicit choice.
      if (!rules.offerAuth(session.secure, session.remoteAddress)) {
        relayAuthFailures.inc({ reason: 'unencrypted' })
        slog.warn({ relay_user: auth.username }, 'relay AUTH refused: not encrypted')
        return cb(reply(538, '5.7.11 Encryption required: issue STARTTLS first'))
      }
      const password = new Secret(auth.password ?? '')
      relayUsers.authenticate(auth.username ?? '', password, session.remoteAddress).then(
        (outcome) => {
          if (outcome.refused) relayAuthFailures.inc({ reason: outcome.refused })
          if (outcome.refused === 'limited') {
            slog.warn({ relay_user: auth.username }, 'relay AUTH refused: too many failed attempts from this address')
            // 454: a temporary refusal (RFC 4954 §6), so a well-behaved client waits instead of giving up for good.
            return cb(reply(454, `4.7.0 Too many failed AUTH attempts from ${session.remoteAddress}: try again in ${Math.ceil(outcome.retryAfterS / 60)} minutes`))
          }
          if (outcome.refused === 'wrong') {
            slog.warn({ relay_user: auth.username }, 'relay AUTH refused: unknown user or wrong password')
            return cb(reply(535, '5.7.8 Authentication credentials invalid'))
          }
          const { user } = outcome
          users.set(session.id, user)
          slog.debug({ relay_user: user.username }, 'relay AUTH accepted')
          cb(null, { user: user.id })
        },
        (e: Error) => {
          slog.error({ err: e }, 'relay AUTH failed inside Mailbridge')
          cb(reply(454, '4.7.0 Temporary authentication failure'))
        },
      )
    },

    onMailFrom(address: { address: string }, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const user = users.get(session.id)!
      if (!isEmailAddress(address.address)) return cb(refuse('sender_invalid', 553, `5.1.7 The sender <${address.address}> is not a valid address`))
      if (!senderAllowed(user, address.address)) {
        sessionLog(session).warn({ sender: address.address }, 'relay sender refused: not in the relay user\'s allowed_from')
        return cb(refuse('sender_not_allowed', 550, `5.7.1 Relay user ${user.username} may not send as ${address.address}; allowed: ${user.allowed_from.join(', ')}`))
      }
      cb()
    },

    onRcptTo(address: { address: string }, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      if (!isEmailAddress(address.address)) return cb(reply(553, `5.1.3 The recipient <${address.address}> is not a valid address`))
      // RFC 5321 §4.5.3.1.10: 452 asks the client to send the rest in another transaction.
      if (session.envelope.rcptTo.length >= MAX_RECIPIENTS) return cb(reply(452, `4.5.3 Too many recipients: at most ${MAX_RECIPIENTS} per message`))
      cb()
    },

    onData(stream: Readable & { sizeExceeded?: boolean }, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void) {
      const slog = sessionLog(session)
      const chunks: Buffer[] = []
      let bytes = 0
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        // Keep nothing past the limit: the message is refused with 552 anyway (RFC 1870 §6.3).
        if (bytes <= maxSize) chunks.push(chunk)
      })
      // smtp-server destroys the stream when the client goes away mid-DATA: nothing was queued, nothing is.
      stream.once('error', (e) => {
        slog.info({ cause: e.message }, 'relay client went away during DATA; nothing was queued')
        cb(e)
      })
      stream.once('end', () => {
        if (stream.sizeExceeded) {
          slog.warn({ bytes, limit: maxSize }, 'relay mail refused: larger than MAILBRIDGE_MAX_MAIL_BYTES allows')
          return cb(refuse('too_large', 552, tooLarge))
        }
        void queue(Buffer.concat(chunks), session).then(
          (message) => cb(null, message),
          (e: Error) => cb(e),
        )
      })
    },

    onClose(session: SMTPServerSession) {
      users.delete(session.id)
      caps.release(session.id, session.remoteAddress)
      relaySessions.set(caps.open)
    },
  })

  /** Check the header From like the envelope sender, then commit the mail before the 250 (RFC 5321 §6.1). */
  async function queue(raw: Buffer, session: SMTPServerSession): Promise<string> {
    const user = users.get(session.id)!
    const slog = sessionLog(session)
    const envelope = { from: (session.envelope.mailFrom as { address: string }).address, to: session.envelope.rcptTo.map((r) => r.address) }
    const refusal = checkHeaders(raw, user)
    if (refusal) {
      slog.warn({ reason: refusal.reason, reply: refusal.text }, 'relay mail refused: its header block')
      throw refuse(refusal.reason, refusal.code, refusal.text)
    }
    const mail = await readRawMail(normaliseHeaderLineEnds(raw), envelope, (domain) => messageIdFor(newId(), domain))
    // mailparser may find a From address the check above could not read (one inside an encoded-word); without a
    // From field the envelope sender becomes it.
    if (!senderAllowed(user, mail.from.address)) {
      slog.warn({ sender: mail.from.address }, 'relay mail refused: its From is not in the relay user\'s allowed_from')
      throw refuse('sender_not_allowed', 550, `5.7.1 Relay user ${user.username} may not send as ${mail.from.address} (the From header); allowed: ${user.allowed_from.join(', ')}`)
    }
    try {
      const queued = await mails.acceptRaw(mail, envelope.to)
      relayMailsAccepted.inc()
      slog.info({ mail_id: queued.id, server_id: queued.server_id, message_id: queued.message_id, recipients: envelope.to.length, bytes: raw.length }, 'relay mail queued')
      return `2.0.0 Ok: queued as ${queued.id}`
    } catch (e) {
      // 4xx: the application keeps the message and tries again later, which is what it should do here.
      if (e instanceof MailbridgeError && e.status < 500) {
        slog.warn({ cause: e.message }, 'relay mail not queued')
        throw refuse('not_queued', 451, `4.3.0 Mailbridge cannot queue this message now: ${e.message}`)
      }
      slog.error({ err: e }, 'relay mail not queued: storing it failed')
      throw refuse('not_queued', 451, '4.3.0 Mailbridge could not store the message; try again later')
    }
  }

  const servers: SMTPServer[] = []
  const listen = (server: SMTPServer, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, settings.host, () => {
        server.off('error', reject)
        server.on('error', (e) => log.warn({ err: e }, 'relay connection error'))
        resolve((server.server.address() as { port: number }).port)
      })
    })
  const close = () => Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => undefined)
  try {
    const plain = new RelayServer(options(false), rules)
    servers.push(plain)
    const port = await listen(plain, o.port ?? config.relayPort ?? 587)
    const wantTls = o.tlsPort ?? settings.tlsPort
    let tlsPort: number | undefined
    if (wantTls !== undefined) {
      const implicit = new RelayServer(options(true), rules)
      servers.push(implicit)
      tlsPort = await listen(implicit, wantTls)
    }
    log.info({ host: settings.host, port, tls_port: tlsPort, certificate: tls.source, allow: settings.allow, insecure_localhost: settings.insecureLocalhost }, 'SMTP relay listening')
    return { port, tlsPort, close }
  } catch (e) {
    await close()
    throw e
  }
}
