/**
 * A TLS front for Dovecot that plays the network and Exchange's session handling: it terminates TLS (the test
 * certificate) and relays the plaintext IMAP conversation to Dovecot's port 143 on loopback, where Dovecot allows
 * login without TLS. Because it sees the plaintext, it can
 * - cut a session after the server sent N bytes — mid-literal, no BYE, as a dead network or a killed proxy does;
 * - end a session (after N bytes, or now) the way Exchange Online does when the token expires: `* BYE Session invalidated -
 *   AccessTokenExpired` at the next response boundary, then close (research B3, imapsync #250). Dovecot checks
 *   a token at login only, so it cannot do this itself.
 */
import net from 'node:net'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'

export interface ImapFront {
  host: '127.0.0.1'
  port: number
  /** Sessions accepted so far. */
  sessions(): number
  /**
   * End each of the next `sessions` (default 1) sessions once the server has sent `bytes` bytes in it: cut it
   * there (no BYE), or with `bye`, send `* BYE <bye>` at the next response boundary. `onEnd` runs just before.
   */
  endAfter(bytes: number, o?: { bye?: string; sessions?: number; onEnd?: () => void }): void
  /** End every open session at its next response boundary with `* BYE <text>`, then close it. */
  bye(text: string): void
  /** Answer the next client command matching `command` with `* BYE <text>` instead of passing it on; `onEnd` runs just before. */
  byeOn(command: RegExp, text: string, onEnd?: () => void): void
  close(): Promise<void>
}

const TLS_DIR = new URL('./tls/', import.meta.url)

/** Tracks where one server response ends (a CRLF that does not announce a literal), across chunks. */
class Boundaries {
  #literal = 0
  #tail = ''
  /** Between two responses (nothing of one is pending). */
  get between(): boolean {
    return this.#literal === 0 && this.#tail === ''
  }
  /** Feed a chunk; with `stop`, return the offset just past the first response boundary in it (else -1). */
  scan(chunk: Buffer, stop: boolean): number {
    for (let i = 0; i < chunk.length; i++) {
      if (this.#literal > 0) {
        const take = Math.min(this.#literal, chunk.length - i)
        this.#literal -= take
        i += take - 1
        continue
      }
      const b = chunk[i]!
      if (b !== 0x0a) {
        this.#tail = (this.#tail + String.fromCharCode(b)).slice(-24)
        continue
      }
      const literal = /\{(\d+)\+?\}\r$/.exec(this.#tail)
      this.#tail = ''
      if (literal) this.#literal = Number(literal[1])
      else if (stop) return i + 1
    }
    return -1
  }
}

export async function startImapFront(target: { host: string; port: number }): Promise<ImapFront> {
  let accepted = 0
  const ends: Array<{ bytes: number; bye?: string; onEnd?: () => void }> = []
  const open = new Set<{ bye(text: string): void; destroy(): void }>()
  let byeOnCommand: { command: RegExp; text: string; onEnd?: () => void } | undefined

  const server = tls.createServer({ key: readFileSync(new URL('key.pem', TLS_DIR)), cert: readFileSync(new URL('cert.pem', TLS_DIR)) }, (client) => {
    accepted++
    const planned = ends.shift()
    const upstream = net.connect(target.port, target.host)
    const boundaries = new Boundaries()
    let sent = 0
    let byeText: string | undefined
    const session = {
      bye(text: string) {
        byeText = text
      },
      destroy() {
        client.destroy()
        upstream.destroy()
      },
    }
    open.add(session)
    const end = () => {
      open.delete(session)
      session.destroy()
    }
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
    const sayBye = (before: Buffer = Buffer.alloc(0)) => {
      client.write(before)
      client.end(`* BYE ${byeText}\r\n`)
      upstream.destroy()
      open.delete(session)
    }
    // An invalidated session takes no more commands: the server never sees them, the client gets the BYE.
    client.on('data', (d: Buffer) => {
      const planned = byeOnCommand
      if (byeText === undefined && planned?.command.test(d.toString('latin1'))) {
        byeOnCommand = undefined
        planned.onEnd?.()
        byeText = planned.text
      }
      if (byeText === undefined) upstream.write(d)
      else if (boundaries.between) sayBye()
    })
    upstream.on('data', (d: Buffer) => {
      const chunk = d
      if (planned && byeText === undefined && sent + chunk.length >= planned.bytes) {
        planned.onEnd?.()
        if (planned.bye === undefined) {
          client.write(chunk.subarray(0, planned.bytes - sent))
          return end()
        }
        byeText = planned.bye
      }
      if (byeText !== undefined) {
        const at = boundaries.scan(chunk, true)
        if (at >= 0) return sayBye(chunk.subarray(0, at))
      } else boundaries.scan(chunk, false)
      sent += chunk.length
      client.write(chunk)
    })
  })
  server.on('tlsClientError', () => undefined)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as net.AddressInfo).port
  return {
    host: '127.0.0.1',
    port,
    sessions: () => accepted,
    endAfter(bytes, o = {}) {
      for (let i = 0; i < (o.sessions ?? 1); i++) ends.push({ bytes, bye: o.bye, onEnd: o.onEnd })
    },
    bye(text) {
      for (const s of open) s.bye(text)
    },
    byeOn(command, text, onEnd) {
      byeOnCommand = { command, text, onEnd }
    },
    close() {
      for (const s of open) s.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
