import type { Message } from './model.ts'

/** A message and the replies to it, as a thread is read. */
export interface ThreadNode {
  message: Message
  replies: ThreadNode[]
}

/**
 * The messages of one thread as a tree: each under the message its In-Reply-To names (RFC 5322 §3.6.4), siblings
 * in the order they were fetched; a reply whose parent is not among them starts a branch of its own. Date headers
 * are not trusted for the shape (clocks and zones lie): a reply can carry an earlier Date than its parent.
 */
export function threadTree(messages: readonly Message[]): ThreadNode[] {
  const inOrder = [...messages].sort((a, b) => a.received_at.localeCompare(b.received_at) || a.id.localeCompare(b.id))
  const nodes = inOrder.map((message): ThreadNode => ({ message, replies: [] }))
  const byMessageId = new Map<string, ThreadNode>()
  for (const n of nodes) if (n.message.message_id && !byMessageId.has(n.message.message_id)) byMessageId.set(n.message.message_id, n)
  const parentOf = new Map<ThreadNode, ThreadNode>()
  // Headers that name each other would make a loop that hides them all: a parent is refused if it descends from the child.
  const descendsFrom = (n: ThreadNode | undefined, ancestor: ThreadNode): boolean => {
    for (; n; n = parentOf.get(n)) if (n === ancestor) return true
    return false
  }
  for (const n of nodes) {
    const parent = n.message.in_reply_to ? byMessageId.get(n.message.in_reply_to) : undefined
    if (parent && !descendsFrom(parent, n)) parentOf.set(n, parent)
  }
  for (const n of nodes) parentOf.get(n)?.replies.push(n)
  return nodes.filter((n) => !parentOf.has(n))
}
