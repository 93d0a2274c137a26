import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { ImapFlow } from 'imapflow';
import { dovecotAvailable, startDovecot, type Dovecot } from './dovecot.ts';

const SKIP = dovecotAvailable() ? false : 'Dovecot is not installed (/usr/sbin/dovecot missing): run .ci/install-peers.sh as root';

const ALICE = 'alice@example.com';
const BOB = 'bob@example.com';
const IMAP_SCOPE = 'https://outlook.office.com/IMAP.AccessAsUser.All';

/** Tiny RFC 7662 introspection endpoint: POST /introspect with form token=... */
async function startIntrospection() {
  const tokens = new Map<string, { username: string; scope: string; exp: number }>();
  let requests = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      requests++;
      const info = req.method === 'POST' && req.url === '/introspect' ? tokens.get(new URLSearchParams(body).get('token') ?? '') : undefined;
      const active = info !== undefined && info.exp > Date.now() / 1000;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(active ? { active: true, ...info } : { active: false }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/introspect`,
    get requests() {
      return requests;
    },
    register(token: string, username: string, scope = IMAP_SCOPE, ttlSecs = 3600) {
      tokens.set(token, { username, scope, exp: Math.floor(Date.now() / 1000) + ttlSecs });
      return token;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
type Introspection = Awaited<ReturnType<typeof startIntrospection>>;

function client(d: Dovecot, o: { user: string; token: string; implicitTls?: boolean; host?: string; doSTARTTLS?: boolean }) {
  return new ImapFlow({
    host: o.host ?? d.host,
    port: o.implicitTls ? d.imapsPort : d.imapPort,
    secure: o.implicitTls ?? false,
    ...(o.doSTARTTLS === undefined ? {} : { doSTARTTLS: o.doSTARTTLS }),
    auth: { user: o.user, accessToken: o.token },
    tls: {},
    logger: false,
  });
}

function message(subject: string, body = `Body of ${subject}\r\n`) {
  return `From: Sender <sender@example.net>\r\nTo: ${ALICE}\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '-')}@example.net>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n${body}`;
}

async function subjectsIn(c: ImapFlow, folder = 'INBOX'): Promise<Array<{ uid: number; subject: string | undefined }>> {
  const lock = await c.getMailboxLock(folder);
  try {
    const out: Array<{ uid: number; subject: string | undefined }> = [];
    for await (const m of c.fetch('1:*', { uid: true, envelope: true })) out.push({ uid: m.uid, subject: m.envelope?.subject });
    return out.sort((a, b) => a.uid - b.uid);
  } finally {
    lock.release();
  }
}

/** Dovecot writes its log through a separate log process: poll until the line shows up. */
async function logMatches(d: Dovecot, re: RegExp, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const log = await d.log();
    if (re.test(log)) return;
    if (Date.now() > deadline) assert.fail(`Dovecot log never matched ${re}; last lines:\n${log.split('\n').slice(-15).join('\n')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Raw IMAP over a socket: sends lines and collects everything the server says. */
function rawSession(sock: net.Socket) {
  let buf = '';
  const waiters: Array<() => void> = [];
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => {
    buf += d;
    for (const w of waiters.splice(0)) w();
  });
  return {
    get text() {
      return buf;
    },
    send: (line: string) => sock.write(`${line}\r\n`),
    async until(re: RegExp, ms = 5000) {
      const deadline = Date.now() + ms;
      while (!re.test(buf)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; got:\n${buf}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      return buf;
    },
  };
}

describe('Dovecot test peer (XOAUTH2 via RFC 7662 introspection)', { skip: SKIP }, () => {
  let auth: Introspection;
  let d: Dovecot;
  let aliceToken: string;
  let bobToken: string;

  before(async () => {
    auth = await startIntrospection();
    aliceToken = auth.register('alice-good-token', ALICE);
    bobToken = auth.register('bob-good-token', BOB);
    d = await startDovecot({ introspectUrl: auth.url });
    await d.seed(ALICE, message('First seeded message'));
    await d.seed(ALICE, message('Second seeded message'), { seen: true });
  });

  after(async () => {
    await d?.stop();
    await auth?.close();
  });

  test('a good token logs in over STARTTLS and fetches the seeded messages', async () => {
    const c = client(d, { user: ALICE, token: aliceToken });
    await c.connect();
    try {
      assert.equal(c.secureConnection, true, 'the connection was upgraded with STARTTLS');
      const msgs = await subjectsIn(c);
      assert.deepEqual(
        msgs.map((m) => m.subject),
        ['First seeded message', 'Second seeded message'],
      );
    } finally {
      await c.logout();
    }
    await logMatches(d, /Login: user=<alice@example\.com>, method=XOAUTH2, .*TLS/);
  });

  test('a good token logs in over implicit TLS and lists the default folders', async () => {
    const c = client(d, { user: ALICE, token: aliceToken, implicitTls: true });
    await c.connect();
    try {
      const folders = (await c.list()).map((f) => f.path);
      for (const f of ['INBOX', 'Sent', 'Drafts']) assert.ok(folders.includes(f), `${f} in ${folders.join(', ')}`);
      assert.equal((await subjectsIn(c)).length, 2);
    } finally {
      await c.logout();
    }
  });

  test('a bad token is refused with AUTHENTICATIONFAILED', async () => {
    const started = Date.now();
    const c = client(d, { user: ALICE, token: 'not-a-registered-token' });
    await assert.rejects(c.connect(), (err: Error & Record<string, unknown>) => {
      assert.equal(err.authenticationFailed, true);
      assert.equal(err.serverResponseCode, 'AUTHENTICATIONFAILED');
      assert.match(String(err.response), /Authentication failed/);
      return true;
    });
    assert.ok(Date.now() - started < 3000, 'refused quickly (auth_failure_delay = 0)');
    // And no penalty for the next login from the same address (anvil auth penalty is off).
    const next = Date.now();
    const ok = client(d, { user: ALICE, token: aliceToken });
    await ok.connect();
    await ok.logout();
    assert.ok(Date.now() - next < 1500, `a good login right after a failure took ${Date.now() - next} ms`);
  });

  test("another user's token is refused", async () => {
    const c = client(d, { user: ALICE, token: bobToken });
    await assert.rejects(c.connect(), (err: Error & Record<string, unknown>) => {
      assert.equal(err.authenticationFailed, true);
      assert.equal(err.serverResponseCode, 'AUTHENTICATIONFAILED');
      return true;
    });
    await logMatches(d, /Username 'alice@example\.com' did not match 'bob@example\.com'/);
  });

  test('an expired token is refused', async () => {
    const expired = auth.register('alice-expired-token', ALICE, IMAP_SCOPE, -10);
    const c = client(d, { user: ALICE, token: expired });
    await assert.rejects(c.connect(), (err: Error & Record<string, unknown>) => err.authenticationFailed === true);
  });

  test('seedMany of 500 messages is fast and all of them are listed in order', async () => {
    const user = 'bulk@example.com';
    const token = auth.register('bulk-token', user);
    const raws = Array.from({ length: 500 }, (_, i) => message(`Bulk ${i}`));
    const started = Date.now();
    await d.seedMany(user, raws);
    const took = Date.now() - started;
    assert.ok(took < 5000, `seedMany(500) took ${took} ms`);

    const c = client(d, { user, token });
    await c.connect();
    try {
      const status = await c.status('INBOX', { messages: true, unseen: true });
      assert.ok(status);
      assert.equal(status.messages, 500);
      assert.equal(status.unseen, 500);
      const msgs = await subjectsIn(c);
      assert.deepEqual(
        msgs.map((m) => m.subject),
        raws.map((_, i) => `Bulk ${i}`),
        'UIDs follow the array order',
      );
    } finally {
      await c.logout();
    }
    assert.equal((await d.flags(user)).length, 500);
  });

  test('seed and seedMany can target another folder and mark messages seen', async () => {
    const user = 'folders@example.com';
    await d.seed(user, message('Archived one'), { folder: 'Archive' });
    await d.seedMany(user, [message('Archived two'), message('Archived three')], { folder: 'Archive', seen: true });
    await d.seedMany(user, [message('Nested')], { folder: 'Projects/2024' });
    const flags = await d.flags(user, 'Archive');
    assert.deepEqual(flags, [
      { uid: 1, flags: [] },
      { uid: 2, flags: ['\\Seen'] },
      { uid: 3, flags: ['\\Seen'] },
    ]);
    assert.deepEqual(await d.flags(user, 'Projects/2024'), [{ uid: 1, flags: [] }]);
    assert.deepEqual(await d.flags(user), []);
  });

  test('\\Seen shows up in flags() after the client sets it', async () => {
    assert.deepEqual(await d.flags(ALICE), [
      { uid: 1, flags: [] },
      { uid: 2, flags: ['\\Seen'] },
    ]);
    const c = client(d, { user: ALICE, token: aliceToken });
    await c.connect();
    try {
      const lock = await c.getMailboxLock('INBOX');
      try {
        assert.equal(await c.messageFlagsAdd('1', ['\\Seen'], { uid: true }), true);
      } finally {
        lock.release();
      }
    } finally {
      await c.logout();
    }
    assert.deepEqual(await d.flags(ALICE), [
      { uid: 1, flags: ['\\Seen'] },
      { uid: 2, flags: ['\\Seen'] },
    ]);
  });

  test('kickAll() drops a live session', async () => {
    const c = client(d, { user: ALICE, token: aliceToken });
    await c.connect();
    await c.mailboxOpen('INBOX');
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    c.on('error', () => {});
    await d.kickAll();
    await closed;
    assert.equal(c.usable, false);
    await logMatches(d, /imap\(alice@example\.com\).*Disconnected: Server shutting down\./);
    // With nobody connected, kickAll() is a no-op rather than an error.
    await d.kickAll();
  });

  test('kickAll() sends "* BYE Server shutting down." before closing', async () => {
    const sock = tls.connect({ host: d.host, port: d.imapsPort, servername: 'localhost' });
    const s = rawSession(sock);
    await s.until(/^\* OK /m);
    const ir = Buffer.from(`user=${ALICE}\x01auth=Bearer ${aliceToken}\x01\x01`).toString('base64');
    s.send(`a1 AUTHENTICATE XOAUTH2 ${ir}`);
    await s.until(/^a1 OK .*Logged in/m);
    const ended = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    await d.kickAll();
    await s.until(/^\* BYE Server shutting down\.\r\n/m);
    await ended;
  });

  test('a refused token gets a SASL continuation with a JSON error, then a tagged NO', async () => {
    const sock = tls.connect({ host: d.host, port: d.imapsPort, servername: 'localhost' });
    const s = rawSession(sock);
    try {
      await s.until(/^\* OK /m);
      const ir = Buffer.from(`user=${ALICE}\x01auth=Bearer wrong\x01\x01`).toString('base64');
      s.send(`a1 AUTHENTICATE XOAUTH2 ${ir}`);
      const text = await s.until(/^\+ \S+\r\n/m);
      const challenge = /^\+ (\S+)\r\n/m.exec(text)?.[1] ?? '';
      assert.deepEqual(JSON.parse(Buffer.from(challenge, 'base64').toString('utf8')), { status: '401', schemes: 'bearer', scope: 'mail' });
      s.send('');
      await s.until(/^a1 NO \[AUTHENTICATIONFAILED\] Authentication failed\.\r\n/m);
    } finally {
      sock.destroy();
    }
  });
});

describe('Dovecot test peer with TLS enforcement (listenAddr 127.0.0.2)', { skip: SKIP }, () => {
  let auth: Introspection;
  let d: Dovecot;
  let token: string;

  before(async () => {
    auth = await startIntrospection();
    token = auth.register('alice-token', ALICE);
    d = await startDovecot({ introspectUrl: auth.url, listenAddr: '127.0.0.2' });
    await d.seed(ALICE, message('Over TLS only'));
  });

  after(async () => {
    await d?.stop();
    await auth?.close();
  });

  test('a plain-text login without TLS is refused', async () => {
    assert.equal(d.host, '127.0.0.2');
    const before = auth.requests;
    const c = client(d, { user: ALICE, token, doSTARTTLS: false });
    // No AUTH= is advertised before TLS, so ImapFlow refuses on its own and sends nothing.
    await assert.rejects(c.connect(), /Unsupported authentication mechanism/);
    assert.equal(auth.requests, before, 'the token was never sent to the introspection endpoint');
  });

  test('before STARTTLS no AUTH= mechanism is offered and AUTHENTICATE gets PRIVACYREQUIRED', async () => {
    const sock = net.connect({ host: d.host, port: d.imapPort });
    const s = rawSession(sock);
    try {
      const greeting = await s.until(/^\* OK .*\r\n/m);
      assert.doesNotMatch(greeting, /AUTH=/);
      assert.match(greeting, /STARTTLS/);
      const ir = Buffer.from(`user=${ALICE}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
      s.send(`a1 AUTHENTICATE XOAUTH2 ${ir}`);
      await s.until(/^a1 NO \[PRIVACYREQUIRED\] Authentication not allowed until SSL\/TLS is enabled\.\r\n/m);
    } finally {
      sock.destroy();
    }
  });

  test('the same token logs in after STARTTLS', async () => {
    const c = client(d, { user: ALICE, token, doSTARTTLS: true });
    await c.connect();
    try {
      assert.deepEqual(
        (await subjectsIn(c)).map((m) => m.subject),
        ['Over TLS only'],
      );
    } finally {
      await c.logout();
    }
  });
});

describe('Dovecot test peer options', { skip: SKIP }, () => {
  let auth: Introspection;

  before(async () => {
    auth = await startIntrospection();
  });

  after(async () => {
    await auth?.close();
  });

  test('requiredScope refuses a token without that scope', async () => {
    const d = await startDovecot({ introspectUrl: auth.url, requiredScope: IMAP_SCOPE });
    try {
      const good = auth.register('scoped-token', ALICE, `openid ${IMAP_SCOPE} offline_access`);
      const wrong = auth.register('smtp-only-token', ALICE, 'https://outlook.office.com/SMTP.Send');
      const ok = client(d, { user: ALICE, token: good });
      await ok.connect();
      await ok.logout();
      await assert.rejects(client(d, { user: ALICE, token: wrong }).connect(), (err: Error & Record<string, unknown>) => err.authenticationFailed === true);
      await logMatches(d, /Token is not valid for scope/);
    } finally {
      await d.stop();
    }
  });

  test('usernameAttribute selects the introspection field compared with the login name', async () => {
    const d = await startDovecot({ introspectUrl: auth.url, usernameAttribute: 'scope' });
    try {
      // Contrived but deterministic: the "scope" field carries the user name here.
      const token = auth.register('odd-token', 'someone-else@example.com', ALICE);
      const c = client(d, { user: ALICE, token });
      await c.connect();
      await c.logout();
    } finally {
      await d.stop();
    }
  });

  test('mechanisms "xoauth2 oauthbearer" advertises both, and ImapFlow then logs in with OAUTHBEARER', async () => {
    const d = await startDovecot({ introspectUrl: auth.url, mechanisms: 'xoauth2 oauthbearer' });
    try {
      const token = auth.register('bearer-token', ALICE);
      const c = client(d, { user: ALICE, token, implicitTls: true });
      await c.connect();
      await c.logout();
      await logMatches(d, /Login: user=<alice@example\.com>, method=OAUTHBEARER/);
    } finally {
      await d.stop();
    }
  });

  test('an unreachable introspection endpoint is a temporary failure (UNAVAILABLE), not AUTHENTICATIONFAILED', async () => {
    const d = await startDovecot({ introspectUrl: 'http://127.0.0.1:1/introspect' });
    try {
      const c = client(d, { user: ALICE, token: 'any-token' });
      await assert.rejects(c.connect(), (err: Error & Record<string, unknown>) => {
        // ImapFlow flags any tagged NO to AUTHENTICATE as authenticationFailed; the code tells them apart.
        assert.equal(err.authenticationFailed, true);
        assert.equal(err.serverResponseCode, 'UNAVAILABLE');
        assert.match(String(err.response), /Temporary authentication failure/);
        return true;
      });
      await logMatches(d, /Introspection failed: connect\(127\.0\.0\.1:1\) failed/);
    } finally {
      await d.stop();
    }
  });

  test('two instances run side by side, and stop() frees the ports and removes the temp dir', async () => {
    const [a, b] = await Promise.all([startDovecot({ introspectUrl: auth.url }), startDovecot({ introspectUrl: auth.url })]);
    const ports = new Set([a.imapPort, a.imapsPort, b.imapPort, b.imapsPort]);
    assert.equal(ports.size, 4);
    // Activity right before stop(): new login processes are still starting up when it is called.
    const token = auth.register('side-by-side', ALICE);
    const c = client(a, { user: ALICE, token });
    await c.connect();
    await c.logout();
    const started = Date.now();
    await Promise.all([a.stop(), b.stop()]);
    assert.ok(Date.now() - started < 3000, `stop() took ${Date.now() - started} ms`);
    for (const d of [a, b]) {
      assert.equal(existsSync(d.dir), false);
      for (const port of [d.imapPort, d.imapsPort]) {
        await assert.rejects(
          new Promise<void>((resolve, reject) => {
            const s = net.connect({ host: d.host, port }, () => {
              s.destroy();
              resolve();
            });
            s.on('error', reject);
          }),
          /ECONNREFUSED/,
        );
      }
    }
    await a.stop(); // idempotent
  });
});
