/**
 * One e-mail address (RFC 5322 addr-spec, dot-atom local part, with UTF-8 allowed per RFC 6531), without a
 * display name. Deliberately strict: an address that reaches an SMTP envelope must need no quoting.
 */
const LOCAL = /^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+(\.[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+)*$/u
const LABEL = /^[\p{L}\p{N}]([\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u

export function isEmailAddress(value: string): boolean {
  if (value.length > 254 || /[\s<>()[\]\\,;:"]/.test(value)) return false
  const at = value.lastIndexOf('@')
  if (at < 1 || at === value.length - 1) return false
  const local = value.slice(0, at)
  const domain = value.slice(at + 1)
  if (local.length > 64 || !LOCAL.test(local)) return false
  const labels = domain.split('.')
  return labels.length >= 2 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels.at(-1)!)
}

export const domainOf = (address: string): string => address.slice(address.lastIndexOf('@') + 1).toLowerCase()
