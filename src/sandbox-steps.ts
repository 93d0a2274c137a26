/** What the sandbox prints: where everything runs, and the steps to walk, filled with this run's values. */
export interface SandboxRun {
  baseUrl: string
  password: string
  apiToken: string
  endpoint: string
  smtp: { host: string; port: number }
  /** Dovecot's address, or why there is none */
  imap: { host: string; ssl: number; starttls: number } | { missing: string }
  relay?: { host: string; port: number }
  clientId: string
  clientSecret: string
  mailboxes: string[]
  dir: string
  ownDir: boolean
  /** this data folder was used before: the emulator's tokens are gone */
  restarted: boolean
}

export function sandboxSteps(r: SandboxRun): string {
  const [alice, bob] = r.mailboxes as [string, string]
  const imap = 'missing' in r.imap ? undefined : r.imap
  const missing = 'missing' in r.imap ? r.imap.missing : ''
  const mail = (to: string, subject: string) =>
    [
      `     curl -s -X POST ${r.baseUrl}/api/v1/mail -H "Authorization: Bearer ${r.apiToken}" -H 'content-type: application/json' \\`,
      `       -d '{"to": ["${to}"], "subject": "${subject}", "text": "Hi"}'`,
    ]
  return [
    '',
    'Mailbridge sandbox: everything below runs on this machine, nothing reaches Microsoft.',
    '',
    `  Admin UI         ${r.baseUrl}/admin   user admin, password ${r.password}`,
    `  Microsoft        ${r.endpoint} (emulator; parameter microsoft_outlook.endpoint already points here)`,
    `  SMTP             ${r.smtp.host}:${r.smtp.port} STARTTLS + XOAUTH2, standing in for smtp.office365.com; mail to ${r.mailboxes.join(' or ')} lands in their IMAP mailbox`,
    imap
      ? `  IMAP             ${imap.host}:${imap.ssl} SSL/TLS (or ${imap.starttls} STARTTLS) + XOAUTH2, Dovecot standing in for outlook.office365.com`
      : `  IMAP             none: ${missing}`,
    ...(r.relay ? [`  Relay            ${r.relay.host}:${r.relay.port} STARTTLS + a relay user's password (MAILBRIDGE_RELAY_PORT)`] : []),
    `  API token        ${r.apiToken}`,
    `  Data             ${r.dir}${r.ownDir ? ' (deleted on exit; set MAILBRIDGE_DATA_DIR to keep it)' : ' (kept)'}`,
    '',
    ...(r.restarted
      ? [
          'This data folder was used before: the app registration is the same, and servers that pointed at the last',
          "run's peers now point at this run's. The emulator keeps no tokens and Dovecot starts with empty mailboxes,",
          'so on each server click "Reconnect your Outlook account" (and Test & Confirm the incoming ones again).',
          '',
        ]
      : []),
    'The emulator\'s consent page is https with a test certificate your browser does not know, so the browser warns',
    'once: click "Advanced", then "Proceed to 127.0.0.1 (unsafe)" (Firefox: "Advanced…", "Accept the Risk and',
    'Continue"). Mailbridge talks to Microsoft over https only, so the sandbox does not switch that off; and do not',
    'import test/support/tls/ca.pem into your browser: its private key is public, in test/support/tls.',
    '',
    'Outgoing mail (the guide, "Setup in Odoo"):',
    '  1. Sign in, open Settings → General Settings; under Discuss tick "External Email Servers" and Save.',
    `  2. Under "Outlook Credentials" paste Client ID ${r.clientId}`,
    `     and Client Secret ${r.clientSecret}, then Save.`,
    '  3. Click "Outgoing Email Servers", then New. Keep "Outlook", type any Description and the Username',
    `     ${alice} (host and port are already the local SMTP peer).`,
    '  4. Click "Connect your Outlook account"; on the emulator\'s consent page click "Yes".',
    '  5. Back on the server: the green "Outlook Token Valid" tag. Click "Test Connection": "Connection Test Successful!"',
    '  6. Settings → Technical → System Parameters: add mail.force.smtp.from = the Username.',
    `  7. Send a mail to ${bob} and watch it in Mail → Mail queue:`,
    ...mail(bob, 'Hello Bob'),
    '',
    ...(imap
      ? [
          `Incoming mail (${bob}'s mailbox):`,
          `  8. Settings → Incoming Email Servers → New. Keep "Outlook", type a Description and the Username ${bob}`,
          '     (host and port are already the local Dovecot), then "Connect your Outlook account" and "Yes" as',
          `     ${bob}.`,
          '  9. Click "Test & Confirm": the server shows "Confirmed".',
          ` 10. Click "Fetch Now": the mail of step 7 is stored; Mail → Messages lists "Hello Bob". Any mail to ${alice} or`,
          `     ${bob} sent through Mailbridge after this reaches their mailbox, and is fetched every minute.`,
          '',
        ]
      : []),
    ...(r.relay
      ? [
          'SMTP relay (a legacy application with a password):',
          ` 11. Settings → Technical → SMTP Relay Users: Username printer, a Password (10 characters or more), May send as ${alice}; Create.`,
          ` 12. Send through it with Python's smtplib (or swaks --server ${r.relay.host}:${r.relay.port} --tls --auth-user printer`,
          `     --auth-password <password> --from ${alice} --to ${bob}):`,
          `     python3 - <<'EOF'`,
          `import smtplib`,
          `with smtplib.SMTP('${r.relay.host}', ${r.relay.port}) as s:`,
          `    s.starttls()`,
          `    s.login('printer', '<password>')`,
          `    s.sendmail('${alice}', ['${bob}'], 'From: ${alice}\\r\\nTo: ${bob}\\r\\nSubject: Via the relay\\r\\n\\r\\nHi')`,
          `EOF`,
          `     then Fetch Now on ${bob}'s incoming server lists "Via the relay".`,
          '',
        ]
      : [`SMTP relay: start the sandbox with MAILBRIDGE_RELAY_PORT=2525 to try it.`, '']),
    `The emulator knows ${r.mailboxes.join(' and ')}; any other account is refused, as Microsoft would.`,
    '',
    'Ctrl+C stops everything.',
    '',
  ].join('\n')
}
