import { readFileSync } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { SMTPServer } from 'smtp-server'

/**
 * Servers an attacker points Mailbridge at, on 127.0.0.2 (outside the tests' MAILBRIDGE_TRUSTED_HOSTS, which is
 * 127.0.0.1): each speaks enough of its protocol to be handed a secret and records whatever reaches it, so a test
 * can assert that nothing did. Their certificate is the test CA's, valid for 127.0.0.2, so TLS would not stop
 * anything: only Mailbridge's own checks do.
 */
export const ROGUE_HOST = '127.0.0.2'
const TLS_DIR = new URL('./tls/', import.meta.url)
const tls = () => ({ key: readFileSync(new URL('key.pem', TLS_DIR)), cert: readFileSync(new URL('cert.pem', TLS_DIR)) })

export interface Rogue {
  host: string
  port: number
  /** Everything received: connections, commands, credentials, request bodies. */
  received: string[]
  close(): Promise<void>
}

/** An SMTP server offering AUTH XOAUTH2 after STARTTLS that accepts any token, recording it. */
export async function startRogueSmtp(): Promise<Rogue> {
  const received: string[] = []
  const server = new SMTPServer({
    ...tls(),
    secure: false,
    authMethods: ['XOAUTH2', 'PLAIN', 'LOGIN'],
    disableReverseLookup: true,
    logger: false,
    onConnect(_s, cb) {
      received.push('connect')
      cb()
    },
    onAuth(auth, _s, cb) {
      received.push(`auth ${auth.method} ${auth.username} ${auth.accessToken ?? auth.password ?? ''}`)
      cb(null, { user: auth.username })
    },
    onData(stream, _s, cb) {
      stream.on('data', (c: Buffer) => received.push(`data ${c.toString()}`))
      stream.on('end', () => cb())
    },
  })
  await new Promise<void>((r) => server.listen(0, ROGUE_HOST, r))
  return { host: ROGUE_HOST, port: (server.server.address() as AddressInfo).port, received, close: () => new Promise<void>((r) => server.close(() => r())) }
}

/** An IMAP server over implicit TLS that takes any AUTHENTICATE XOAUTH2, recording each line it is sent. */
export async function startRogueImap(): Promise<Rogue> {
  const received: string[] = []
  const sockets = new Set<TLSSocket>()
  const server = createTlsServer(tls(), (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    received.push('connect')
    socket.write('* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] ready\r\n')
    let buffer = ''
    socket.on('data', (d: Buffer) => {
      buffer += d.toString()
      for (let i = buffer.indexOf('\r\n'); i >= 0; i = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, i)
        buffer = buffer.slice(i + 2)
        received.push(line)
        const [tag, command] = line.split(' ')
        if (/^capability$/i.test(command ?? '')) socket.write(`* CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR\r\n${tag} OK done\r\n`)
        else if (/^authenticate$/i.test(command ?? '')) socket.write(`${tag} OK [CAPABILITY IMAP4rev1] authenticated\r\n`)
        else if (/^logout$/i.test(command ?? '')) socket.end(`* BYE\r\n${tag} OK bye\r\n`)
        else if (tag) socket.write(`${tag} NO not here\r\n`)
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, ROGUE_HOST, r))
  return {
    host: ROGUE_HOST,
    port: (server.address() as AddressInfo).port,
    received,
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise<void>((r) => server.close(() => r()))
    },
  }
}

/** A token endpoint (https) that answers every request with a token, recording the request's path and body. */
export async function startRogueTokenEndpoint(): Promise<Rogue & { url: string }> {
  const received: string[] = []
  const server = createHttpsServer(tls(), (req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      received.push(`${req.method} ${req.url} ${body}`)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token_type: 'Bearer', access_token: 'rogue', refresh_token: 'rogue', expires_in: 3600 }))
    })
  })
  await new Promise<void>((r) => server.listen(0, ROGUE_HOST, r))
  const port = (server.address() as AddressInfo).port
  return {
    host: ROGUE_HOST,
    port,
    url: `https://${ROGUE_HOST}:${port}/`,
    received,
    close: () => {
      server.closeAllConnections()
      return new Promise<void>((r) => server.close(() => r()))
    },
  }
}
