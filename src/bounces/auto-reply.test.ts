import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isAutoReply } from './auto-reply.ts'
import { readFields } from './fields.ts'

const auto = (head: string) => isAutoReply(readFields(head))

test('isAutoReply: Auto-Submitted auto-replied is one (RFC 3834 §5.2)', () => {
  assert.equal(auto('From: a@example.org\nAuto-Submitted: auto-replied\nSubject: Away'), true)
})

test('isAutoReply: Auto-Submitted auto-generated is one only as a response (Exchange out of office)', () => {
  assert.equal(auto('Subject: Automatic reply: Invoice 42\nAuto-Submitted: auto-generated\nIn-Reply-To: <m1@example.net>\nX-Auto-Response-Suppress: All'), true)
  assert.equal(auto('Subject: Your nightly report\nAuto-Submitted: auto-generated'), false)
})

test('isAutoReply: X-Autoreply, X-Autorespond and Precedence: auto_reply mark one', () => {
  assert.equal(auto('Subject: Re: hi\nX-Autoreply: yes'), true)
  assert.equal(auto('Subject: Re: hi\nX-Autorespond: Thanks'), true)
  assert.equal(auto('Subject: hi\nPrecedence: auto_reply'), true)
})

test('isAutoReply: Precedence bulk counts on a response that is not list traffic', () => {
  assert.equal(auto('Subject: I am away\nPrecedence: bulk\nIn-Reply-To: <m1@example.net>'), true)
  assert.equal(auto('Subject: Newsletter\nPrecedence: bulk'), false)
  assert.equal(auto('Subject: Re: patch\nPrecedence: bulk\nIn-Reply-To: <m1@example.net>\nList-Id: <dev.lists.example.org>'), false)
})

test('isAutoReply: a vacation subject needs a machine mark or a message it answers', () => {
  assert.equal(auto('Subject: Auto reply: Nyaan\nIn-Reply-To: <m1@example.net>'), true)
  assert.equal(auto('Subject: =?UTF-8?Q?Automatische_Antwort:_Rechnung?=\nX-MS-Exchange-Inbox-Rules-Loop: bob@example.de'), true)
  assert.equal(auto('Subject: Out of office: team day planning'), false)
  assert.equal(auto('Subject: Re: Automatic reply: Invoice 42\nIn-Reply-To: <m2@example.net>'), false)
})

test('isAutoReply: X-Auto-Response-Suppress alone asks for no answer and is not one (MS-OXCMAIL §2.1.3.2.20)', () => {
  assert.equal(auto('Subject: Re: Invoice 42\nIn-Reply-To: <m1@example.net>\nX-Auto-Response-Suppress: OOF, AutoReply'), false)
})
