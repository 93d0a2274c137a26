import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { dirname, resolve } from 'node:path'
import { listOf, parseAddressList } from './address-list.ts'

/** Everything Mailbridge reads from its environment, validated once at start (design.md §5). */
export interface Config {
  port: number
  host: string
  /** Public URL; the OAuth redirect URI is built from it, never from a request's Host header. */
  baseUrl: URL
  databaseUrl: string
  /** Where the generated secret key (and the SQLite file, by default) live. */
  dataDir: string
  /**
   * The keyring from MAILBRIDGE_SECRET_KEY: the first key seals, every key opens (key rotation, crypto/rotate.ts).
   * Undefined means "load or generate `secret.key` in dataDir".
   */
  secretKeys?: Buffer[]
  adminPassword?: string
  apiToken?: string
  /** How many days the audit log keeps an entry (MAILBRIDGE_AUDIT_DAYS). */
  auditDays: number
  relayPort?: number
  /** The SMTP relay's other settings; it runs only when relayPort is set. */
  relay: RelayConfig
  /** Refresh an access token when fewer than this many seconds remain (Exchange HVE rejects tokens ~10 min before expiry). */
  refreshMarginSeconds: number
  /** How long one request to the token endpoint may take before it counts as the endpoint being down. */
  tokenTimeoutMs: number
  logLevel: string
  /**
   * MAILBRIDGE_TRUST_PROXY: the reverse proxies (addresses, CIDR ranges) whose X-Forwarded-For names the client,
   * and whose PROXY protocol header the relay reads. Empty: the peer is the client.
   */
  trustProxy: string[]
  /**
   * MAILBRIDGE_TRUSTED_HOSTS: host names or addresses beside the providers' own where secrets and tokens may go
   * and which may be on this machine (test peers, sandboxes, on-premises gateways). Empty by default.
   */
  trustedHosts: string[]
  /** Largest mail the API accepts, decoded (Exchange Online's default limit is 35 MB). */
  maxMailBytes: number
  queue: QueueConfig
  fetch: FetchConfig
  webhooks: WebhookConfig
}

/** How incoming servers are fetched (design.md §2 Fetch). */
export interface FetchConfig {
  /** How often the scheduler looks for confirmed servers whose poll interval has passed. */
  pollMs: number
  /** Messages per UID FETCH and per transaction. */
  batchSize: number
  /** The lease one fetcher holds on a server; renewed after every batch. */
  leaseMs: number
  /** Scheduled fetches (IMAP sessions) one node runs at once; the other due servers wait their turn. */
  concurrency: number
  /** mailparser threads beside the main thread (0: parse inline). */
  parseThreads: number
}

/** How webhook deliveries are retried: exponential backoff with jitter, then `failed`. */
export interface WebhookConfig {
  pollMs: number
  retryBaseMs: number
  retryMaxMs: number
  maxAttempts: number
  timeoutMs: number
  /** Deliveries in flight at once per webhook on one node: a slow endpoint fills its own, never the others'. */
  concurrency: number
}

/** How the mail queue retries (design.md §2): exponential backoff with jitter, bounded. */
export interface QueueConfig {
  pollMs: number
  leaseMs: number
  retryBaseMs: number
  retryMaxMs: number
  maxAttempts: number
  /** How long mails wait for a Reconnect when their server's token is dead, before they fail. */
  tokenWaitMs: number
  /** How long a server rests after 5.2.25x (Exchange's lock-out) or a refused AUTH. */
  pauseMs: number
  /** How long SIGTERM waits for mails being sent before handing them back to the queue. */
  drainMs: number
  /** How long a node's SMTP connection slots outlive it if it dies (see outgoing/slots.ts). */
  slotLeaseMs: number
  /** Mailboxes one node sends through at once (each with up to 3 SMTP connections); the others wait their turn. */
  sendConcurrency: number
  /** How long a node's heartbeat may stop before the others hand back its mails, deliveries, fetches and slots. */
  nodeDeadMs: number
}

/** The SMTP relay for legacy applications (src/relay/). */
export interface RelayConfig {
  host: string
  /** Implicit TLS (RFC 8314 §3.3), beside STARTTLS on relayPort. */
  tlsPort?: number
  /** PEM files; without them a self-signed certificate is generated into the data folder. */
  tlsCert?: string
  tlsKey?: string
  /** IP addresses and CIDR ranges allowed to connect; empty allows any. */
  allow: string[]
  /** Allow AUTH without TLS from 127.0.0.1 / ::1 only (a local application that cannot do STARTTLS). */
  insecureLocalhost: boolean
  /** Connections open at once, in all and from one client address (each listener counts its own). */
  maxConnections: number
  maxConnectionsPerAddress: number
  /** No byte from the client for this long closes the connection (RFC 5321 §4.5.3.2.7 asks for 5 minutes). */
  idleTimeoutMs: number
  /** A command that has not arrived whole this long after the previous one closes the connection. */
  commandTimeoutMs: number
}

export class ConfigError extends Error {}

const int = (env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0, max = 65535): number => {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`)
  return n
}

/** Accepts 32 raw bytes as base64 (44 chars) or hex (64 chars). */
export function parseSecretKey(raw: string, name = 'MAILBRIDGE_SECRET_KEY'): Buffer {
  const text = raw.trim()
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64')
  if (key.length !== 32) throw new ConfigError(`${name} must be 32 bytes in base64 or hex (try: openssl rand -base64 32)`)
  return key
}

/**
 * A keyring: keys separated by commas or line breaks, the one that seals first. One key is a keyring of one.
 * A key appears once however often it is listed (an operator may leave the current key among the old ones).
 */
export function parseSecretKeys(raw: string, name = 'MAILBRIDGE_SECRET_KEY'): Buffer[] {
  const keys = raw.split(/[\s,]+/).filter(Boolean).map((k) => parseSecretKey(k, name))
  if (keys.length === 0) throw new ConfigError(`${name} holds no key (try: openssl rand -base64 32)`)
  return keys.filter((k, i) => keys.findIndex((o) => o.equals(k)) === i)
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = int(env, 'MAILBRIDGE_PORT', 8080)
  let baseUrl: URL
  try {
    baseUrl = new URL(env.MAILBRIDGE_BASE_URL || `http://localhost:${port}`)
  } catch {
    throw new ConfigError(`MAILBRIDGE_BASE_URL must be an absolute URL such as https://mail.example.com, got "${env.MAILBRIDGE_BASE_URL}"`)
  }
  if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') throw new ConfigError('MAILBRIDGE_BASE_URL must start with http:// or https://')
  const databaseUrl = env.MAILBRIDGE_DATABASE_URL || 'sqlite:./data/mailbridge.db'
  if (!/^(sqlite:|postgres(ql)?:\/\/)/.test(databaseUrl)) throw new ConfigError('MAILBRIDGE_DATABASE_URL must be sqlite:<path> or postgres://…')
  const dataDir = resolve(env.MAILBRIDGE_DATA_DIR || (databaseUrl.startsWith('sqlite:') && databaseUrl !== 'sqlite::memory:' ? dirname(databaseUrl.slice('sqlite:'.length)) : './data'))
  const relay = env.MAILBRIDGE_RELAY_PORT
  // ASVS V2.1.1: a password a person sets has at least 12 characters. API tokens shorter than 16 are refused by
  // access/api-tokens.ts, so such a MAILBRIDGE_API_TOKEN would never work: say so at start instead.
  if (env.MAILBRIDGE_ADMIN_PASSWORD && env.MAILBRIDGE_ADMIN_PASSWORD.length < 12) throw new ConfigError('MAILBRIDGE_ADMIN_PASSWORD must have at least 12 characters')
  if (env.MAILBRIDGE_API_TOKEN && (env.MAILBRIDGE_API_TOKEN.length < 16 || env.MAILBRIDGE_API_TOKEN.length > 200)) {
    throw new ConfigError('MAILBRIDGE_API_TOKEN must have 16 to 200 characters (try: openssl rand -base64 32)')
  }
  const trustProxy = listOf(env.MAILBRIDGE_TRUST_PROXY)
  parseAddressList(trustProxy, 'MAILBRIDGE_TRUST_PROXY')
  const trustedHosts = listOf(env.MAILBRIDGE_TRUSTED_HOSTS)
  for (const h of trustedHosts) {
    if (!isIP(h.replace(/^\[(.*)\]$/, '$1')) && !/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/.test(h)) {
      throw new ConfigError(`MAILBRIDGE_TRUSTED_HOSTS: "${h}" is not a host name or an IP address (no scheme, port or path; example: 127.0.0.1,mail-gw.example.com)`)
    }
  }
  return {
    port,
    host: env.MAILBRIDGE_HOST || '127.0.0.1',
    baseUrl,
    databaseUrl,
    dataDir,
    secretKeys: env.MAILBRIDGE_SECRET_KEY ? parseSecretKeys(env.MAILBRIDGE_SECRET_KEY) : undefined,
    adminPassword: env.MAILBRIDGE_ADMIN_PASSWORD || undefined,
    apiToken: env.MAILBRIDGE_API_TOKEN || undefined,
    auditDays: int(env, 'MAILBRIDGE_AUDIT_DAYS', 90, 1, 3650),
    relayPort: relay ? int(env, 'MAILBRIDGE_RELAY_PORT', 0, 1) : undefined,
    relay: {
      host: env.MAILBRIDGE_RELAY_HOST || env.MAILBRIDGE_HOST || '127.0.0.1',
      tlsPort: env.MAILBRIDGE_RELAY_TLS_PORT ? int(env, 'MAILBRIDGE_RELAY_TLS_PORT', 0, 1) : undefined,
      tlsCert: env.MAILBRIDGE_RELAY_TLS_CERT || undefined,
      tlsKey: env.MAILBRIDGE_RELAY_TLS_KEY || undefined,
      allow: listOf(env.MAILBRIDGE_RELAY_ALLOW),
      insecureLocalhost: env.MAILBRIDGE_RELAY_INSECURE_LOCALHOST === '1',
      maxConnections: int(env, 'MAILBRIDGE_RELAY_MAX_CONNECTIONS', 500, 1, 100_000),
      maxConnectionsPerAddress: int(env, 'MAILBRIDGE_RELAY_MAX_CONNECTIONS_PER_ADDRESS', 50, 1, 100_000),
      idleTimeoutMs: int(env, 'MAILBRIDGE_RELAY_IDLE_TIMEOUT_S', 300, 1, 3600) * 1000,
      commandTimeoutMs: int(env, 'MAILBRIDGE_RELAY_COMMAND_TIMEOUT_S', 600, 1, 3600) * 1000,
    },
    refreshMarginSeconds: int(env, 'MAILBRIDGE_REFRESH_MARGIN_S', 600, 0, 3000),
    // At most 25 s: a refresh holds its credential's lease for 30 s, and must end before another node may take it.
    tokenTimeoutMs: int(env, 'MAILBRIDGE_TOKEN_TIMEOUT_S', 15, 1, 25) * 1000,
    logLevel: env.MAILBRIDGE_LOG_LEVEL || 'info',
    trustProxy,
    trustedHosts,
    maxMailBytes: int(env, 'MAILBRIDGE_MAX_MAIL_BYTES', 35 * 1024 * 1024, 1024, 2 ** 31 - 1),
    queue: {
      pollMs: int(env, 'MAILBRIDGE_QUEUE_POLL_MS', 1000, 10, 600_000),
      leaseMs: int(env, 'MAILBRIDGE_QUEUE_LEASE_S', 300, 1, 86_400) * 1000,
      retryBaseMs: int(env, 'MAILBRIDGE_RETRY_BASE_S', 30, 0, 86_400) * 1000,
      retryMaxMs: int(env, 'MAILBRIDGE_RETRY_MAX_S', 3600, 0, 7 * 86_400) * 1000,
      maxAttempts: int(env, 'MAILBRIDGE_RETRY_MAX_ATTEMPTS', 10, 1, 1000),
      tokenWaitMs: int(env, 'MAILBRIDGE_TOKEN_WAIT_S', 3 * 86_400, 0, 90 * 86_400) * 1000,
      pauseMs: int(env, 'MAILBRIDGE_SERVER_PAUSE_S', 900, 0, 86_400) * 1000,
      drainMs: int(env, 'MAILBRIDGE_DRAIN_S', 30, 0, 3600) * 1000,
      slotLeaseMs: int(env, 'MAILBRIDGE_SMTP_SLOT_LEASE_S', 30, 1, 3600) * 1000,
      sendConcurrency: int(env, 'MAILBRIDGE_SEND_CONCURRENCY', 50, 1, 10_000),
      nodeDeadMs: int(env, 'MAILBRIDGE_NODE_DEAD_S', 15, 1, 3600) * 1000,
    },
    fetch: {
      pollMs: int(env, 'MAILBRIDGE_FETCH_POLL_MS', 5000, 10, 600_000),
      batchSize: int(env, 'MAILBRIDGE_FETCH_BATCH', 50, 1, 1000),
      leaseMs: int(env, 'MAILBRIDGE_FETCH_LEASE_S', 300, 1, 86_400) * 1000,
      concurrency: int(env, 'MAILBRIDGE_FETCH_CONCURRENCY', 20, 1, 1000),
      // On two cores (one of them busy with TLS and SQLite) a parser thread measured slower than parsing inline (bench/fetch).
      parseThreads: int(env, 'MAILBRIDGE_PARSE_THREADS', availableParallelism() > 2 ? Math.min(4, availableParallelism() - 1) : 0, 0, 64),
    },
    webhooks: {
      pollMs: int(env, 'MAILBRIDGE_WEBHOOK_POLL_MS', 1000, 10, 600_000),
      retryBaseMs: int(env, 'MAILBRIDGE_WEBHOOK_RETRY_BASE_S', 10, 0, 86_400) * 1000,
      retryMaxMs: int(env, 'MAILBRIDGE_WEBHOOK_RETRY_MAX_S', 3600, 0, 7 * 86_400) * 1000,
      maxAttempts: int(env, 'MAILBRIDGE_WEBHOOK_MAX_ATTEMPTS', 12, 1, 1000),
      timeoutMs: int(env, 'MAILBRIDGE_WEBHOOK_TIMEOUT_S', 10, 1, 600) * 1000,
      concurrency: int(env, 'MAILBRIDGE_WEBHOOK_CONCURRENCY', 8, 1, 1000),
    },
  }
}

/** The one redirect URI to register in Azure for a provider route such as `microsoft_outlook`. */
export const redirectUri = (config: Pick<Config, 'baseUrl'>, route: string): string =>
  new URL(`/${route}/confirm`, config.baseUrl).toString()
