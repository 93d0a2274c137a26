/**
 * A process that works a mail queue on a shared database as a worker node does, as fast as it can: it queues a few
 * mails, claims some (src/queue/lease.ts), and marks them sent, `rounds` times. It prints what it claimed and every
 * error with its code, so src/queue/lease.test.ts can check that no two processes took the same mail and that no
 * claim failed ("database is locked" on SQLite).
 *   node --import tsx test/support/claimer.ts <database url> <owner> <rounds> <start at, ms since the epoch>
 */
import { isoIn, newId, now, openDatabase } from '../../src/db/index.ts'
import { claimDue } from '../../src/queue/lease.ts'

const [url, owner, rounds, startAt] = process.argv.slice(2) as [string, string, string, string]
const database = openDatabase(url, { redoable: true })
const claimed: string[] = []
const errors: Array<{ step: string; code?: string; message: string }> = []
const attempt = async (step: string, fn: () => Promise<unknown>) => {
  try {
    await fn()
  } catch (e) {
    errors.push({ step, code: (e as { code?: string }).code, message: (e as Error).message })
  }
}

// Start together with the other claimers, so their transactions overlap.
await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())))
for (let i = 0; i < Number(rounds); i++) {
  await attempt('queue', () => database.db.insertInto('mails').values([0, 1, 2].map(() => mail())).execute())
  await attempt('claim', async () => {
    const at = now()
    const got = await claimDue(database, {
      table: 'mails',
      due: (eb) => eb.and([eb('state', '=', 'outgoing'), eb('next_attempt_at', '<=', at)]),
      limit: async (tx) => 4 - Number((await tx.selectFrom('mails').select((eb) => eb.fn.countAll<number>().as('n')).where('lease_owner', '=', owner).executeTakeFirstOrThrow()).n),
      set: () => ({ state: 'sending', lease_owner: owner, lease_until: isoIn(60_000), last_attempt_at: at }),
      returning: ['id'],
    })
    claimed.push(...got.map((m) => m.id))
    if (got.length) await database.db.updateTable('mails').set({ state: 'sent', lease_owner: null, lease_until: null }).where('id', 'in', got.map((m) => m.id)).execute()
  })
}
await database.close()
console.log(JSON.stringify({ claimed, errors }))

function mail() {
  const at = now()
  return { id: newId(), state: 'outgoing' as const, message_id: `<${newId()}@test>`, from_addr: 'a@contoso.com', to_addrs: '[]', cc_addrs: '[]', bcc_addrs: '[]', subject: 's', content: '{}', size: 1, server_id: 's1', next_attempt_at: at, created_at: at, updated_at: at }
}
