import { Socket, connect as tcpConnect } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import type { Secret } from '../crypto/secret.ts'

/** One SMTP reply (RFC 5321 §4.2): the code, the enhanced status if any (RFC 3463), the text lines. */
export interface SmtpReply {
  code: number
  enhanced?: string
  text: string
}

/** Where a probe stopped and what the server said. `stage` names the command that failed. */
export class SmtpProbeError extends Error {
  constructor(
    readonly stage: 'connect' | 'tls' | 'greeting' | 'ehlo' | 'starttls' | 'auth' | 'mail' | 'rcpt' | 'rset',
    message: string,
    readonly reply?: SmtpReply,
    readonly errno?: string,
  ) {
    super(message)
    this.name = 'SmtpProbeError'
  }
}

export interface ProbeOptions {
  host: string
  port: number
  encryption: 'starttls' | 'ssl' | 'none'
  /** The XOAUTH2 initial response (already base64), or PLAIN credentials, or nothing. */
  auth?: { mechanism: 'XOAUTH2'; initial: Secret } | { mechanism: 'PLAIN'; user: string; password: Secret }
  mailFrom: string
  rcptTo: string
  timeoutMs?: number
  clientName?: string
}

/**
 * Test Connection as Odoo's button promises and more: connect, STARTTLS, AUTH (the 235 is checked), MAIL FROM,
 * RCPT TO, RSET, QUIT, without sending a message. nodemailer cannot stop before DATA, so this is the one
 * hand-written SMTP client in Mailbridge; the queue sends with nodemailer.
 */
export async function probeSmtp(o: ProbeOptions): Promise<SmtpReply[]> {
  const timeoutMs = o.timeoutMs ?? 15_000
  const replies: SmtpReply[] = []
  let socket: Socket | TLSSocket = await open(o, timeoutMs)
  let reader = new ReplyReader(socket, timeoutMs)
  try {
    const expect = async (stage: SmtpProbeError['stage'], ok: (code: number) => boolean, command?: string) => {
      if (command !== undefined) socket.write(command + '\r\n')
      const reply = await reader.next(stage)
      replies.push(reply)
      if (!ok(reply.code)) throw new SmtpProbeError(stage, `${stage.toUpperCase()} was refused: ${reply.code} ${reply.text}`, reply)
      return reply
    }
    const name = o.clientName ?? 'mailbridge.localhost'
    await expect('greeting', (c) => c === 220)
    let ehlo = await expect('ehlo', (c) => c === 250, `EHLO ${name}`)
    if (o.encryption === 'starttls') {
      if (!/\bSTARTTLS\b/i.test(ehlo.text)) throw new SmtpProbeError('starttls', `${o.host}:${o.port} does not offer STARTTLS; Mailbridge will not authenticate without TLS`)
      await expect('starttls', (c) => c === 220, 'STARTTLS')
      reader.detach()
      socket = await upgrade(socket, o.host, timeoutMs)
      reader = new ReplyReader(socket, timeoutMs)
      ehlo = await expect('ehlo', (c) => c === 250, `EHLO ${name}`)
    }
    if (o.auth) {
      if (o.auth.mechanism === 'XOAUTH2') {
        socket.write(`AUTH XOAUTH2 ${o.auth.initial.reveal()}\r\n`)
        let reply = await reader.next('auth')
        // A failed XOAUTH2 may come as a 334 challenge carrying a JSON error; answer with an empty line to get the final reply.
        if (reply.code === 334) {
          socket.write('\r\n')
          reply = await reader.next('auth')
        }
        replies.push(reply)
        if (reply.code !== 235) throw new SmtpProbeError('auth', `AUTH XOAUTH2 was refused: ${reply.code} ${reply.text}`, reply)
      } else {
        const plain = Buffer.from(`\0${o.auth.user}\0${o.auth.password.reveal()}`).toString('base64')
        socket.write(`AUTH PLAIN ${plain}\r\n`)
        const reply = await reader.next('auth')
        replies.push(reply)
        if (reply.code !== 235) throw new SmtpProbeError('auth', `AUTH PLAIN was refused: ${reply.code} ${reply.text}`, reply)
      }
    }
    await expect('mail', (c) => c === 250, `MAIL FROM:<${o.mailFrom}>`)
    await expect('rcpt', (c) => c === 250 || c === 251, `RCPT TO:<${o.rcptTo}>`)
    await expect('rset', (c) => c === 250, 'RSET')
    socket.write('QUIT\r\n')
    return replies
  } finally {
    reader.detach()
    socket.end()
    setTimeout(() => socket.destroy(), 1000).unref()
  }
}

function open(o: ProbeOptions, timeoutMs: number): Promise<Socket | TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket: Socket | TLSSocket =
      o.encryption === 'ssl' ? tlsConnect({ host: o.host, port: o.port, servername: sni(o.host) }) : tcpConnect({ host: o.host, port: o.port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new SmtpProbeError('connect', `no answer from ${o.host}:${o.port} within ${timeoutMs / 1000} s`, undefined, 'ETIMEDOUT'))
    }, timeoutMs)
    socket.once(o.encryption === 'ssl' ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer)
      resolve(socket)
    })
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(connectError(o.host, o.port, e))
    })
  })
}

function upgrade(socket: Socket, host: string, timeoutMs: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ socket, servername: sni(host) })
    const timer = setTimeout(() => {
      tls.destroy()
      reject(new SmtpProbeError('tls', `the TLS handshake with ${host} did not finish within ${timeoutMs / 1000} s`))
    }, timeoutMs)
    tls.once('secureConnect', () => {
      clearTimeout(timer)
      resolve(tls)
    })
    tls.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(new SmtpProbeError('tls', `the TLS handshake with ${host} failed: ${e.message}`, undefined, e.code))
    })
  })
}

/** SNI takes host names only (RFC 6066 §3). */
const sni = (host: string): string | undefined => (/^[\d.]+$|:/.test(host) ? undefined : host)

function connectError(host: string, port: number, e: NodeJS.ErrnoException): SmtpProbeError {
  const why: Record<string, string> = {
    ENOTFOUND: `the host name ${host} does not resolve (DNS)`,
    EAI_AGAIN: `the host name ${host} could not be resolved right now (DNS)`,
    ECONNREFUSED: `${host}:${port} refused the connection`,
    ETIMEDOUT: `no answer from ${host}:${port}`,
    EHOSTUNREACH: `${host} is unreachable`,
  }
  if (e.code && why[e.code]) return new SmtpProbeError('connect', why[e.code]!, undefined, e.code)
  if (/certificate|ssl|tls/i.test(e.message)) return new SmtpProbeError('tls', `the TLS handshake with ${host} failed: ${e.message}`, undefined, e.code)
  return new SmtpProbeError('connect', `cannot connect to ${host}:${port}: ${e.message}`, undefined, e.code)
}

/** Reads multi-line replies (`250-…` continues, `250 …` ends) off a socket. */
class ReplyReader {
  #buffer = ''
  #lines: string[] = []
  #waiting?: () => void
  #error?: Error
  readonly #onData = (chunk: Buffer) => {
    this.#buffer += chunk.toString('utf8')
    let i: number
    while ((i = this.#buffer.indexOf('\n')) >= 0) {
      this.#lines.push(this.#buffer.slice(0, i).replace(/\r$/, ''))
      this.#buffer = this.#buffer.slice(i + 1)
    }
    this.#waiting?.()
  }
  readonly #onEnd = (e?: Error) => {
    this.#error = e ?? new Error('the server closed the connection')
    this.#waiting?.()
  }

  constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', this.#onData)
    socket.on('error', this.#onEnd)
    socket.on('close', () => this.#onEnd())
  }

  detach(): void {
    this.socket.off('data', this.#onData)
  }

  async next(stage: SmtpProbeError['stage']): Promise<SmtpReply> {
    const deadline = Date.now() + this.timeoutMs
    const lines: string[] = []
    for (;;) {
      const line = this.#lines.shift()
      if (line !== undefined) {
        lines.push(line)
        if (!/^\d{3}-/.test(line)) break
        continue
      }
      if (this.#error) throw new SmtpProbeError(stage, `the connection broke during ${stage.toUpperCase()}: ${this.#error.message}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new SmtpProbeError(stage, `no reply to ${stage.toUpperCase()} within ${this.timeoutMs / 1000} s`, undefined, 'ETIMEDOUT')
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.#waiting = () => {
          clearTimeout(t)
          this.#waiting = undefined
          resolve()
        }
      })
    }
    const code = Number(lines[0]!.slice(0, 3))
    const text = lines.map((l) => l.slice(4)).join('\n')
    const enhanced = /^([245]\.\d{1,3}\.\d{1,3})\b/.exec(text)?.[1]
    return { code, enhanced, text }
  }
}
