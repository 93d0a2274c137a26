import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'

/**
 * Where Mailbridge may connect (design.md §10 "Trusted hosts"). Secrets go only to the provider's own hosts
 * (oauth/providers.ts lists them) or to a host the operator named in MAILBRIDGE_TRUSTED_HOSTS; nothing goes to
 * this machine's loopback unless named there, and nothing ever to link-local or cloud-metadata addresses, where a
 * cloud VM's instance credentials answer anyone who asks (SSRF).
 * @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html (169.254.169.254, fd00:ec2::254)
 * @see https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service (169.254.169.254)
 */

/** A host as written in a URL or a server's host field, compared case-insensitively, without IPv6 brackets or a final dot. */
export const normalHost = (host: string): string => host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '')

/** MAILBRIDGE_TRUSTED_HOSTS: host names or addresses the operator vouches for (test peers, sandboxes, on-premises gateways). */
export class TrustedHosts {
  readonly #hosts: Set<string>

  constructor(entries: readonly string[] = []) {
    this.#hosts = new Set(entries.map(normalHost))
  }

  /** Trust is by the host as written: a name resolving to a trusted address is not trusted itself. */
  has(host: string): boolean {
    return this.#hosts.has(normalHost(host))
  }

  get size(): number {
    return this.#hosts.size
  }
}

const refusedAlways = new BlockList()
// Link-local: cloud metadata services (AWS, Azure, GCP, Oracle: 169.254.169.254) and anything a VM's host answers there.
refusedAlways.addSubnet('169.254.0.0', 16, 'ipv4')
refusedAlways.addSubnet('fe80::', 10, 'ipv6')
refusedAlways.addAddress('fd00:ec2::254', 'ipv6') // AWS metadata over IPv6
refusedAlways.addAddress('100.100.100.200', 'ipv4') // Alibaba Cloud metadata

const thisMachine = new BlockList()
thisMachine.addSubnet('127.0.0.0', 8, 'ipv4')
thisMachine.addSubnet('0.0.0.0', 8, 'ipv4') // "this network": Linux connects 0.0.0.0 to itself
thisMachine.addAddress('::1', 'ipv6')
thisMachine.addAddress('::', 'ipv6')

/** An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address it maps. */
const unmapped = (address: string): { address: string; family: 'ipv4' | 'ipv6' } => {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (m) return { address: m[1]!, family: 'ipv4' }
  return { address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' }
}

/** Why an address may not be reached ('a link-local or cloud-metadata address', 'a loopback address'), or undefined. */
export function refusedAddress(address: string, o: { loopbackTrusted: boolean }): string | undefined {
  const a = unmapped(normalHost(address))
  if (refusedAlways.check(a.address, a.family)) return 'a link-local or cloud-metadata address'
  if (!o.loopbackTrusted && thisMachine.check(a.address, a.family)) return 'a loopback address (this machine)'
  return undefined
}

/** `localhost` and `*.localhost` always mean this machine (RFC 6761 §6.3), whatever DNS says. */
const isLocalhostName = (host: string): boolean => host === 'localhost' || host.endsWith('.localhost')

/**
 * The check at creation, on the host as written: an address literal or a localhost name that is this machine,
 * link-local or cloud metadata is refused (unless trusted, for this machine). Other names are checked on the
 * address they resolve to when used (`resolveReachable`).
 */
export function refusedHost(host: string, trusted: TrustedHosts): string | undefined {
  const h = normalHost(host)
  if (isIP(h) || /^::ffff:/i.test(h)) return refusedAddress(h, { loopbackTrusted: trusted.has(h) })
  if (isLocalhostName(h) && !trusted.has(h)) return 'a loopback address (this machine)'
  return undefined
}

export class RefusedHostError extends Error {
  readonly code = 'EREFUSEDHOST'
}

/**
 * The check at use: every address the name resolves to must be reachable, so a name that resolved elsewhere at
 * creation and now points at this machine or the metadata service is refused (DNS rebinding). Returns the address
 * to connect to, so the connection goes where the check looked.
 */
export async function resolveReachable(host: string, trusted: TrustedHosts): Promise<{ address: string; family: number }> {
  const h = normalHost(host)
  const loopbackTrusted = trusted.has(h)
  const addresses = isIP(h) ? [{ address: h, family: isIP(h) }] : await lookup(h, { all: true })
  for (const a of addresses) {
    const why = refusedAddress(a.address, { loopbackTrusted })
    if (why) throw new RefusedHostError(`${h} resolves to ${why}, which Mailbridge does not connect to (MAILBRIDGE_TRUSTED_HOSTS names the hosts allowed on this machine)`)
  }
  return addresses[0]!
}

/** Whether `host` is one of `allowed` (the provider's hosts) or trusted by the operator. */
export const allowedHost = (host: string, allowed: readonly string[], trusted: TrustedHosts): boolean =>
  allowed.includes(normalHost(host)) || trusted.has(host)

/** The list a refusal names: the provider's hosts, and where more come from. */
export const allowedList = (allowed: readonly string[], trusted: TrustedHosts): string =>
  `${allowed.join(', ')}${trusted.size ? ' or a host in MAILBRIDGE_TRUSTED_HOSTS' : ' (MAILBRIDGE_TRUSTED_HOSTS adds hosts for test peers and on-premises gateways)'}`
