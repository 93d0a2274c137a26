import { invalid } from '../errors.ts'
import { allowedHost, allowedList, refusedHost, type TrustedHosts } from '../host-policy.ts'
import type { Cloud } from './clouds.ts'
import type { EndpointParam, ProviderSpec } from './providers.ts'

/**
 * Secrets and tokens go only where the provider is (design.md §10 "Trusted hosts"): an endpoint parameter names
 * one of the provider's hosts in the chosen cloud, and a server with OAuth one of its mail hosts, unless the
 * operator trusts the host (MAILBRIDGE_TRUSTED_HOSTS). Checked when the value is set, and again before each use,
 * so a value stored before this rule, or left behind by a change of national cloud, sends nothing.
 */

/** Refuse an endpoint URL on a host its provider does not run; `fail` makes the error (400 on input, 409 at use). */
export function checkEndpointHost(param: EndpointParam, url: URL, cloud: Cloud, trusted: TrustedHosts, fail: (message: string) => Error): void {
  const hosts = param.hosts(cloud)
  if (allowedHost(url.hostname, hosts, trusted)) return
  throw fail(`${param.key} must be on ${allowedList(hosts, trusted)} for the ${cloud} cloud, not ${url.hostname}: the client secret and refresh tokens are sent there.`)
}

/** Refuse a mail host a provider's tokens may not be sent to (the server's `host` field). */
export function checkMailHost(p: ProviderSpec, host: string, cloud: Cloud, trusted: TrustedHosts, fail: (message: string) => Error): void {
  const hosts = p.mailHosts(cloud)
  if (allowedHost(host, hosts, trusted)) return
  throw fail(`${p.article} ${p.label} server connects only to ${p.company}'s mail hosts: ${allowedList(hosts, trusted)}, not ${host}: the mailbox's access token is sent to it.`)
}

/**
 * A server's host on create and update: a provider's mail host (or a trusted one) with OAuth; without OAuth any
 * host but this machine (unless trusted), link-local and cloud-metadata addresses. 400 naming what is allowed.
 */
export function checkServerHost(provider: { p: ProviderSpec; cloud: Cloud } | undefined, host: string, trusted: TrustedHosts): void {
  if (provider) return checkMailHost(provider.p, host, provider.cloud, trusted, (message) => invalid('host', message))
  const why = refusedHost(host, trusted)
  if (why) throw invalid('host', `${host} is ${why}, which Mailbridge does not connect to; MAILBRIDGE_TRUSTED_HOSTS names the hosts on this machine it may use.`)
}
