import type { SettingsView } from './service.ts'

/** One warning of the app's credentials: what ends when, and what to do (the banner renders it on every page). */
export interface CredentialWarning {
  level: 'warn' | 'bad'
  text: string
}

const DAY_MS = 86_400_000
/** Azure secrets last at most 24 months; a month is time enough to make and enter the next one. */
export const WARN_DAYS = 30

const daysLeft = (at: string, now: number) => Math.ceil((Date.parse(at) - now) / DAY_MS)
const inDays = (days: number) => `in ${days} day${days === 1 ? '' : 's'}`

/**
 * What the admin must hear about the Outlook app's credentials, from 30 days before one expires: the one in use
 * only (a stored certificate is used instead of the secrets). With a next secret stored, the current one's end is
 * no outage (it takes over); without one, the warning says to add it. After a rollover, until a new next secret is
 * saved, a warning says it happened.
 */
export function credentialWarnings(v: SettingsView, now = Date.now()): CredentialWarning[] {
  const out: CredentialWarning[] = []
  if (v.microsoft_outlook_client_certificate_set) {
    const at = v.microsoft_outlook_client_certificate_expires_at
    const days = at ? daysLeft(at, now) : Infinity
    if (at && days <= WARN_DAYS) {
      const what = days <= 0 ? `The Outlook client certificate expired on ${at.slice(0, 10)}: every mailbox has stopped (AADSTS700027).` : `The Outlook client certificate expires on ${at.slice(0, 10)}, ${inDays(days)}.`
      out.push({ level: days <= 0 ? 'bad' : 'warn', text: `${what} Generate a new certificate in General Settings and upload it to the app in Azure (Certificates & secrets → Certificates).` })
    }
    return out
  }
  const at = v.microsoft_outlook_client_secret_expires_at
  const nextAt = v.microsoft_outlook_client_secret_next_expires_at
  const hasNext = v.microsoft_outlook_client_secret_next_set
  const days = at ? daysLeft(at, now) : Infinity
  if (at && days <= WARN_DAYS) {
    if (hasNext && !(nextAt && daysLeft(nextAt, now) <= 0)) {
      out.push({ level: 'warn', text: `The Outlook Client Secret ${days <= 0 ? 'expired' : 'expires'} on ${at.slice(0, 10)}${days > 0 ? `, ${inDays(days)}` : ''}; the next secret takes over when Microsoft refuses it, with no interruption.` })
    } else {
      const what = days <= 0 ? `The Outlook Client Secret expired on ${at.slice(0, 10)}: every mailbox has stopped (AADSTS7000222).` : `The Outlook Client Secret expires on ${at.slice(0, 10)}, ${inDays(days)}.`
      out.push({ level: days <= 0 ? 'bad' : 'warn', text: `${what} Create a new client secret in Azure (App registrations → Certificates & secrets), then enter its Value and expiry date as the next secret in General Settings: Mailbridge switches to it with no interruption.` })
    }
  }
  if (hasNext && nextAt && daysLeft(nextAt, now) <= WARN_DAYS) {
    const d = daysLeft(nextAt, now)
    out.push({ level: 'warn', text: `The next Outlook Client Secret ${d <= 0 ? 'expired' : 'expires'} on ${nextAt.slice(0, 10)}${d > 0 ? `, ${inDays(d)}` : ''}: create another in Azure and enter it as the next secret in General Settings.` })
  }
  if (v.microsoft_outlook_client_secret_promoted_at && !hasNext) {
    out.push({ level: 'warn', text: `On ${v.microsoft_outlook_client_secret_promoted_at.slice(0, 10)} Microsoft refused the Outlook Client Secret, and the next secret took over (it is now the current one). Add a new next secret in General Settings, so the next rollover is covered too.` })
  }
  return out
}
