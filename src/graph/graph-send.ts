/**
 * Send a MIME message through Microsoft Graph, as it is: `sendMail` with the MIME base64-encoded when it fits in one
 * request, else a draft created from the MIME without its attachments, the attachments added (one POST each when
 * small, an upload session when large), then `send`. Either way the recipient gets the MIME Mailbridge composed,
 * with its Message-ID, and the mailbox keeps a copy in Sent Items. Every mail up to Exchange's 35 MB goes through.
 * @see https://learn.microsoft.com/graph/api/user-sendmail (MIME: base64, Content-Type text/plain; 202 Accepted)
 * @see https://learn.microsoft.com/graph/outlook-send-mime-message (drafts from MIME)
 * @see https://learn.microsoft.com/graph/api/user-post-messages (create a draft)
 * @see https://learn.microsoft.com/graph/api/message-post-attachments (a file "under 3 MB" in one POST)
 * @see https://learn.microsoft.com/graph/outlook-large-attachments (3 MB to 150 MB: an upload session)
 * @see https://learn.microsoft.com/graph/api/attachment-createuploadsession (ranges "up to 4 MB each time")
 * @see https://learn.microsoft.com/graph/api/message-send
 */
import { graphRequest, mailboxUrl, type GraphTarget, type ThrottleRetry } from './graph-request.ts'
import { takeAttachments, type MimeAttachment } from './mime-parts.ts'

/**
 * One Graph request carries at most about 4 MB (Microsoft's answer on Q&A 1824204: "the request size limit is
 * generally around 4 MB", 413 beyond; the upload session page's "up to 4 MB each time"), counted here on the body
 * as sent: the MIME's base64.
 */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024
/** message-post-attachments: one POST attaches a file "under 3 MB". */
const SMALL_ATTACHMENT_BYTES = 3 * 1000 * 1000
/**
 * Upload ranges: 12 × 320 KiB = 3.75 MiB, under the 4 MB a PUT may carry. Multiples of 320 KiB are what Graph's
 * upload sessions ask of OneDrive files (driveitem-createuploadsession); Outlook's page sets no multiple, and these
 * suit both.
 */
export const UPLOAD_CHUNK_BYTES = 12 * 320 * 1024

export interface SendResult {
  /** one request, or the draft path with the number of requests it took */
  via: 'sendMail' | 'draft'
  requests: number
}

export interface SendOptions {
  retry?: ThrottleRetry
}

const base64Length = (n: number) => 4 * Math.ceil(n / 3)

/** A mail Graph cannot take in any form: retrying will not help. */
export class MailTooLargeForGraph extends Error {
  override name = 'MailTooLargeForGraph'
}

/** Send `mime` from the target's mailbox; throws GraphRequestError with Graph's answer when it is refused. */
export async function sendMime(t: GraphTarget, mime: Buffer, o: SendOptions = {}): Promise<SendResult> {
  if (base64Length(mime.length) <= MAX_REQUEST_BYTES) {
    await graphRequest(t, `${mailboxUrl(t)}/sendMail`, { method: 'POST', contentType: 'text/plain', body: mime.toString('base64'), step: 'sendMail', retry: o.retry })
    return { via: 'sendMail', requests: 1 }
  }
  return sendAsDraft(t, mime, o)
}

async function sendAsDraft(t: GraphTarget, mime: Buffer, o: SendOptions): Promise<SendResult> {
  const { skeleton, attachments } = takeAttachments(mime)
  if (base64Length(skeleton.length) > MAX_REQUEST_BYTES) {
    // Only the attachments can go separately; a text or HTML body this large has no other way in.
    throw new MailTooLargeForGraph(`The mail's text and headers alone are ${Math.round(skeleton.length / 1024)} KiB, more than one Microsoft Graph request may carry (4 MB); shorten the body or send the large content as attachments.`)
  }
  let requests = 0
  const call = async (url: string, step: string, init: { method?: string; body?: string | Buffer; contentType?: string; headers?: Record<string, string>; anonymous?: boolean }) => {
    requests++
    return graphRequest(t, url, { ...init, step, retry: o.retry })
  }
  const created = await call(`${mailboxUrl(t)}/messages`, 'create the draft', { method: 'POST', contentType: 'text/plain', body: skeleton.toString('base64') })
  const draft = `${mailboxUrl(t)}/messages/${encodeURIComponent(String(((await created.json()) as { id: string }).id))}`
  try {
    for (const a of attachments) {
      if (a.bytes.length < SMALL_ATTACHMENT_BYTES) await call(`${draft}/attachments`, `attach ${a.name}`, { method: 'POST', contentType: 'application/json', body: JSON.stringify(fileAttachment(a)) })
      else requests += await upload(t, draft, a, o)
    }
    await call(`${draft}/send`, 'send the draft', { method: 'POST' })
  } catch (e) {
    // A draft left behind would be sent by no one; the next attempt starts a new one.
    await graphRequest(t, draft, { method: 'DELETE', step: 'delete the unsent draft', retry: { maxWaitMs: 0, attempts: 1 } }).catch(() => undefined)
    throw e
  }
  return { via: 'draft', requests }
}

function fileAttachment(a: MimeAttachment) {
  return {
    '@odata.type': '#microsoft.graph.fileAttachment', name: a.name, contentType: a.contentType,
    contentBytes: a.bytes.toString('base64'), isInline: a.isInline, ...(a.contentId ? { contentId: a.contentId } : {}),
  }
}

/** An upload session for one attachment, then its ranges in order; answers how many requests that took. */
async function upload(t: GraphTarget, draft: string, a: MimeAttachment, o: SendOptions): Promise<number> {
  const item = { attachmentType: 'file', name: a.name, size: a.bytes.length, contentType: a.contentType, isInline: a.isInline, ...(a.contentId ? { contentId: a.contentId } : {}) }
  const res = await graphRequest(t, `${draft}/attachments/createUploadSession`, { method: 'POST', contentType: 'application/json', body: JSON.stringify({ AttachmentItem: item }), step: `start uploading ${a.name}`, retry: o.retry })
  const { uploadUrl } = (await res.json()) as { uploadUrl: string }
  let requests = 1
  for (let start = 0; start < a.bytes.length; start += UPLOAD_CHUNK_BYTES) {
    const end = Math.min(start + UPLOAD_CHUNK_BYTES, a.bytes.length) - 1
    // "Don't specify an Authorization request header": the upload URL is pre-authenticated (outlook-large-attachments).
    await graphRequest(t, uploadUrl, {
      method: 'PUT', anonymous: true, body: a.bytes.subarray(start, end + 1), contentType: 'application/octet-stream',
      headers: { 'content-range': `bytes ${start}-${end}/${a.bytes.length}` }, step: `upload ${a.name}`, retry: o.retry,
    })
    requests++
  }
  return requests
}
