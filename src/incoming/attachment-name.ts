/**
 * The Content-Disposition of an attachment download: always `attachment` (never shown inline on Mailbridge's
 * origin), an ASCII fallback name and the exact name in `filename*` (RFC 6266 §4.3, RFC 8187).
 */
export function attachmentDisposition(filename: string | null): string {
  const name = (filename ?? 'attachment').replace(/["\\\r\n]/g, '_')
  return `attachment; filename="${name.replace(/[^\x20-\x7e]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`
}
