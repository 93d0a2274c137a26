import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isAutoReply } from './auto-reply.ts'
import { readFields } from './fields.ts'

/** [rule, header section, whether it is an automatic reply] */
const CASES: Array<[string, string, boolean]> = [
  ['Auto-Submitted auto-replied is one (RFC 3834 §5.2)', 'From: a@example.org\nAuto-Submitted: auto-replied\nSubject: Away', true],
  ['auto-generated as a response is one (Exchange out of office)', 'Subject: Automatic reply: Invoice 42\nAuto-Submitted: auto-generated\nIn-Reply-To: <m1@example.net>\nX-Auto-Response-Suppress: All', true],
  ['auto-generated that answers nothing is not (RFC 3834 §5.1)', 'Subject: Your nightly report\nAuto-Submitted: auto-generated', false],
  ['X-Autoreply marks one', 'Subject: Re: hi\nX-Autoreply: yes', true],
  ['X-Autorespond marks one', 'Subject: Re: hi\nX-Autorespond: Thanks', true],
  ['Precedence: auto_reply marks one', 'Subject: hi\nPrecedence: auto_reply', true],
  ['Precedence: bulk on a response is one (vacation(1))', 'Subject: I am away\nPrecedence: bulk\nIn-Reply-To: <m1@example.net>', true],
  ['Precedence: bulk alone is a newsletter', 'Subject: Newsletter\nPrecedence: bulk', false],
  ['Precedence: bulk on list traffic is not one (RFC 2919)', 'Subject: Re: patch\nPrecedence: bulk\nIn-Reply-To: <m1@example.net>\nList-Id: <dev.lists.example.org>', false],
  ['a vacation prefix on a response is one', 'Subject: Auto reply: Nyaan\nIn-Reply-To: <m1@example.net>', true],
  ['a localised prefix with an Exchange rules mark is one', 'Subject: =?UTF-8?Q?Automatische_Antwort:_Rechnung?=\nX-MS-Exchange-Inbox-Rules-Loop: bob@example.de', true],
  ["a person's subject that only starts alike is not", 'Subject: Out of office next week\nIn-Reply-To: <m1@example.net>', false],
  ['a vacation prefix with no machine mark is not', 'Subject: Out of office: team day planning', false],
  ['a person answering an automatic reply is not', 'Subject: Re: Automatic reply: Invoice 42\nIn-Reply-To: <m2@example.net>', false],
  ['X-Auto-Response-Suppress alone asks for no answer (MS-OXCMAIL §2.1.3.2.20)', 'Subject: Re: Invoice 42\nIn-Reply-To: <m1@example.net>\nX-Auto-Response-Suppress: OOF, AutoReply', false],
]

for (const [rule, head, expected] of CASES) {
  test(`isAutoReply: ${rule}`, () => assert.equal(isAutoReply(readFields(head)), expected))
}
