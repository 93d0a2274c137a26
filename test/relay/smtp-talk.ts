import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'

export interface Reply { code: number; text: string }

/**
 * A line-by-line SMTP client for the conversations nodemailer will not have: AUTH before STARTTLS, a client
 * that dies in the middle of DATA. Replies are read whole (multi-line "250-…" up to "250 …", RFC 5321 §4.2.1).
 */
export class SmtpTalk {
  #socket: Socket | TLSSocket
  #buffer = ''
  #waiting: Array<(r: Reply) => void> = []
  #lines: string[] = []
  readonly greeting: Promise<Reply>

  private constructor(socket: Socket) {
    this.#socket = socket
    this.#listen(socket)
    this.greeting = this.#next()
  }

  /** `proxyHeader`: a PROXY protocol v1 line sent before anything else, as a reverse proxy in front would. */
  static async open(port: number, host = '127.0.0.1', o: { proxyHeader?: string } = {}): Promise<SmtpTalk> {
    const socket = netConnect(port, host)
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
    if (o.proxyHeader) socket.write(`${o.proxyHeader}\r\n`)
    const talk = new SmtpTalk(socket)
    await talk.greeting
    return talk
  }

  #listen(socket: Socket | TLSSocket): void {
    socket.on('data', (d: Buffer) => {
      this.#buffer += d.toString('utf8')
      let nl: number
      while ((nl = this.#buffer.indexOf('\r\n')) >= 0) {
        const line = this.#buffer.slice(0, nl)
        this.#buffer = this.#buffer.slice(nl + 2)
        this.#lines.push(line)
        if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
          const r = { code: Number(line.slice(0, 3)), text: this.#lines.map((l) => l.slice(4)).join('\n') }
          this.#lines = []
          this.#waiting.shift()?.(r)
        }
      }
    })
    socket.on('error', () => undefined)
  }

  #next(): Promise<Reply> {
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  /** Send one command line and read its reply. */
  async cmd(line: string): Promise<Reply> {
    const r = this.#next()
    this.#socket.write(`${line}\r\n`)
    return r
  }

  write(data: string | Buffer): void {
    this.#socket.write(data)
  }

  async starttls(): Promise<void> {
    const r = await this.cmd('STARTTLS')
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.code} ${r.text}`)
    const plain = this.#socket
    plain.removeAllListeners('data')
    const secure = tlsConnect({ socket: plain, servername: 'localhost' })
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject))
    this.#socket = secure
    this.#listen(secure)
  }

  destroy(): void {
    this.#socket.destroy()
  }
}

export const plainAuth = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`).toString('base64')
