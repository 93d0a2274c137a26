/**
 * Where the relay's SMTP conversation differs from smtp-server's, one rule each, applied to every connection:
 * smtp-server (3.21) has no option for them, so its command handlers are wrapped per connection. The relay's
 * tests hold each rule (test/relay/devices.test.ts, connections.test.ts), so an smtp-server upgrade that moves
 * these handlers fails there, not in a printer.
 */
import { SMTPServer, type SMTPServerOptions } from 'smtp-server'

type Handler = (command: Buffer, callback: () => void) => void

/** What of smtp-server's connection (smtp-connection.js) the rules touch. */
interface Connection {
  id: string
  secure: boolean
  remoteAddress: string
  session: { disabledCommands?: string[] }
  _dataStream: unknown
  _handlerPending: boolean
  handler_EHLO: Handler
  handler_HELO: Handler
  handler_MAIL: Handler
  _onCommand: Handler
  _onClose(): void
  send(code: number, data: string, context?: string | false): void
  close(): void
}

export interface ConversationRules {
  /** May this connection be offered AUTH now? (RFC 4954 §4: not before TLS, unless the operator allows it.) */
  offerAuth(secure: boolean, remoteAddress: string): boolean
  /** A HELO/EHLO argument that is not one host name was accepted; `given` is what the client sent. */
  oddHello(c: { id: string; remoteAddress: string }, verb: string, given: string): void
  /** SIZE above this in MAIL FROM gets `tooLarge` (RFC 1870 §6.2), the reply the end of DATA gives too. */
  maxSize: number
  tooLarge: string
  sizeRefused(c: { id: string; remoteAddress: string }, declared: number): void
  /** A command must arrive whole within this long after the previous one, however slowly its bytes come. */
  commandTimeoutMs: number
  commandTimedOut(c: { id: string; remoteAddress: string }): void
}

/**
 * `EHLO HP LaserJet M404` or a bare `EHLO`: RFC 5321 §4.1.1.1 asks for a domain or an address literal, but
 * Postfix and Exchange accept anything, and a printer cannot be taught otherwise. The argument becomes one
 * name smtp-server takes (the words joined, or the client's address literal, RFC 5321 §4.1.3).
 */
export function helloCommand(command: Buffer, remoteAddress: string): { command: Buffer; given?: string } {
  const text = command.toString('utf8').trim()
  const [verb = '', ...words] = text.split(/\s+/)
  if (words.length === 1) return { command }
  const name = words.length ? words.join('-') : `[${remoteAddress.includes(':') ? `IPv6:${remoteAddress}` : remoteAddress}]`
  return { command: Buffer.from(`${verb} ${name}`), given: words.join(' ') }
}

function applyRules(c: Connection, rules: ConversationRules): void {
  for (const verb of ['EHLO', 'HELO'] as const) {
    const original = c[`handler_${verb}`].bind(c)
    c[`handler_${verb}`] = (command, callback) => {
      const hello = helloCommand(command, c.remoteAddress)
      if (hello.given !== undefined) rules.oddHello(c, verb, hello.given)
      // smtp-server lists AUTH whenever the command exists; hidden for this one reply, it stays required for MAIL.
      const hideAuth = !rules.offerAuth(c.secure, c.remoteAddress)
      if (hideAuth) c.session.disabledCommands = ['AUTH']
      try {
        original(hello.command, callback)
      } finally {
        if (hideAuth) delete c.session.disabledCommands
      }
    }
  }

  const mail = c.handler_MAIL.bind(c)
  c.handler_MAIL = (command, callback) => {
    const size = /\sSIZE=(\d{1,20})(\s|$)/i.exec(command.toString('latin1'))
    if (size && Number(size[1]) > rules.maxSize) {
      rules.sizeRefused(c, Number(size[1]))
      c.send(552, rules.tooLarge, false)
      return callback()
    }
    mail(command, callback)
  }

  // smtp-server's socket timeout restarts with every byte, so a client sending one byte a minute holds the
  // connection for ever (slowloris). This deadline restarts only when a whole command arrived; during DATA and
  // while Mailbridge itself is answering, the socket timeout alone applies.
  let timer: NodeJS.Timeout | undefined
  const arm = () => {
    clearTimeout(timer)
    timer = setTimeout(() => {
      if (c._dataStream || c._handlerPending) return arm()
      rules.commandTimedOut(c)
      c.send(421, '4.4.2 Command timeout: the command did not arrive whole in time; closing', false)
      c.close()
    }, rules.commandTimeoutMs)
    timer.unref()
  }
  const onCommand = c._onCommand.bind(c)
  c._onCommand = (command, callback) => {
    arm()
    onCommand(command, callback)
  }
  arm()
  const onClose = c._onClose.bind(c)
  c._onClose = () => {
    clearTimeout(timer)
    onClose()
  }
}

/** smtp-server with the relay's conversation rules on every connection it accepts. */
export class RelayServer extends SMTPServer {
  constructor(options: SMTPServerOptions, rules: ConversationRules) {
    super(options)
    // connect() creates the connection and adds it here before any command can arrive.
    const add = this.connections.add.bind(this.connections)
    this.connections.add = (c) => {
      applyRules(c as unknown as Connection, rules)
      return add(c)
    }
  }
}
