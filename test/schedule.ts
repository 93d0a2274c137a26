import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, type Dialect } from './dialects.ts'

/**
 * Files that run with no other file beside them: each one's subject is the machine's time or its cores (a
 * deadline the test itself names, thousands of mails through several processes), which five other files would
 * take from it. Ports, folders and PostgreSQL schemas are chosen fresh by every file, so nothing else needs this.
 */
export const ALONE: readonly string[] = []

export interface Job {
  file: string
  dialect: Dialect
}

export const jobKey = (j: Job): string => `${j.dialect} ${j.file}`

const RECORD = join(ROOT, '.tmp', 'test-durations.json')

/** The seconds each job took the last time it ran here (`.tmp/` is not committed: every machine learns its own). */
export function recordedDurations(): Record<string, number> {
  try {
    return JSON.parse(readFileSync(RECORD, 'utf8')) as Record<string, number>
  } catch {
    return {}
  }
}

export function recordDurations(update: Record<string, number>): void {
  mkdirSync(join(ROOT, '.tmp'), { recursive: true })
  writeFileSync(RECORD, `${JSON.stringify({ ...recordedDurations(), ...update }, null, 1)}\n`)
}

/**
 * A guess for a job never run here: what costs time in these files is starting things (a Mailbridge with its
 * peers, a Dovecot, a real process, a browser), about a second each, more for processes and browsers.
 */
export function estimatedSeconds(file: string): number {
  const text = readFileSync(join(ROOT, file), 'utf8')
  const count = (re: RegExp) => text.match(re)?.length ?? 0
  return 0.5 + count(/\bstart(Mailbridge|World|Mailroom|GmailWorld|Dovecot)\(/g) + 3 * count(/\bstart(Node|Sandbox|UiWorld)\(|chromium\.launch\(/g)
}

/** Longest first, so the last file to start is a short one and the pool ends together. */
export function longestFirst(jobs: Job[]): Job[] {
  const recorded = recordedDurations()
  const seconds = (j: Job) => recorded[jobKey(j)] ?? estimatedSeconds(j.file)
  return [...jobs].sort((a, b) => seconds(b) - seconds(a) || jobKey(a).localeCompare(jobKey(b)))
}
