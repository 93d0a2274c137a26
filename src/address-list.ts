import { BlockList, isIP } from 'node:net'
import { ConfigError } from './config.ts'

/** A list of IP addresses and CIDR ranges, IPv4 or IPv6, from the environment variable `name`. */
export function parseAddressList(entries: string[], name: string): BlockList | undefined {
  if (entries.length === 0) return undefined
  const list = new BlockList()
  for (const entry of entries) {
    const [address, prefix, extra] = entry.split('/')
    const type = isIP(address ?? '')
    const bits = prefix === undefined ? undefined : Number(prefix)
    if (!type || extra !== undefined || (bits !== undefined && (!/^\d{1,3}$/.test(prefix!) || bits > (type === 4 ? 32 : 128)))) {
      throw new ConfigError(`${name}: "${entry}" is not an IP address or CIDR range (examples: 192.168.10.0/24, 10.0.0.7, fd00::/8)`)
    }
    const family = type === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) list.addAddress(address!, family)
    else list.addSubnet(address!, bits, family)
  }
  return list
}

/** A comma-separated list from the environment, entries trimmed, empty ones dropped. */
export const listOf = (raw: string | undefined): string[] => (raw ?? '').split(',').map((v) => v.trim()).filter(Boolean)
