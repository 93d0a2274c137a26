import { html, type Html } from '../../html.ts'

/** An ISO timestamp as people read it: `2026-11-27 10:00 UTC`. */
export const utc = (iso: string): string => `${iso.replace('T', ' ').slice(0, 16)} UTC`

/** How long ago (or how far ahead) in words: "just now", "5 min ago", "in 3 h", "2 days ago". */
export function relative(iso: string, at = Date.now()): string {
  const s = Math.round((at - Date.parse(iso)) / 1000)
  const a = Math.abs(s)
  const words = a < 60 ? '' : a < 3600 ? `${Math.round(a / 60)} min` : a < 86_400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86_400)} day${Math.round(a / 86_400) === 1 ? '' : 's'}`
  if (!words) return 'just now'
  return s >= 0 ? `${words} ago` : `in ${words}`
}

/** A time as a relative phrase, with the exact UTC time beside it for whoever hovers or reads it out. */
export const ago = (iso: string | null | undefined, never = 'never'): Html =>
  iso ? html`<time datetime="${iso}" title="${utc(iso)}">${relative(iso)}</time>` : html`<span class="muted">${never}</span>`
