/**
 * Test peer: a real Dovecot IMAP server (Debian's dovecot-core + dovecot-imapd, installed by
 * .ci/install-peers.sh) that validates XOAUTH2 bearer tokens by RFC 7662 token introspection.
 *
 * Each startDovecot() call writes a standalone config (nothing from /etc/dovecot is used) into its
 * own temp dir, picks free ephemeral ports, runs `dovecot -F` as a child process (in its own
 * process group) and resolves once the STARTTLS port sends its greeting and the implicit-TLS port
 * accepts connections. Several instances can run side by side.
 *
 * Facts worth knowing (see also /work/shared/research/test-peers.md, section 1):
 * - Must run as root: the master binds, and switches to uid/gid 65534 for mail and dovenull for logins.
 * - On 127.0.0.1 Dovecot treats loopback clients as "secured" and allows login without TLS. Use
 *   listenAddr '127.0.0.2' for tests that check TLS enforcement.
 * - The anvil auth penalty is off and auth_failure_delay = 0, yet a refusal still takes ~0.5 s (the
 *   auth process flushes failures on a fixed 500 ms timer). A good token logs in in ~5-30 ms.
 * - No auth cache: every login is introspected. Sessions stay logged in after their token
 *   expires or is revoked; Dovecot checks the token at login only.
 * - A bad token gets `NO [AUTHENTICATIONFAILED] Authentication failed.` after a SASL
 *   continuation (`+ <base64 {"status":"401",...}>`); ImapFlow handles both.
 * - flags() leaves out \Recent (it is per session and not deterministic).
 * - Leaks: call stop() (after()/finally). If the test process exits without it, an 'exit' hook
 *   kills the Dovecot process group; if the process dies without running 'exit' hooks (SIGKILL,
 *   SIGINT, crash), a tiny detached shell watchdog notices within ~1 s, kills the group and removes
 *   the temp dir. Leftovers can be found with `ps -eo pid,cmd | grep mb-dovecot-`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Dovecot {
  /** Address the listeners are bound to: '127.0.0.1' or the listenAddr. */
  host: string;
  /** STARTTLS port. */
  imapPort: number;
  /** Implicit TLS port. */
  imapsPort: number;
  /** The instance's temp dir (removed by stop()). */
  dir: string;
  configPath: string;
  /**
   * One message via `doveadm save -m folder` (default INBOX; the folder is created when missing).
   * `seen` sets \Seen on it. Not meant for concurrent calls on the same user and folder.
   */
  seed(user: string, raw: Buffer | string, opts?: { folder?: string; seen?: boolean }): Promise<void>;
  /**
   * Many messages at once, written straight into the Maildir (5,000 take well under a second).
   * UIDs follow array order. Same options as seed().
   */
  seedMany(user: string, raws: Array<Buffer | string>, opts?: { folder?: string; seen?: boolean }): Promise<void>;
  /** `doveadm fetch 'uid flags' mailbox <folder> all`, sorted by uid, without \Recent. */
  flags(user: string, folder?: string): Promise<Array<{ uid: number; flags: string[] }>>;
  /** `doveadm kick '*'`: drops every logged-in IMAP session (clients get `* BYE`, then EOF). */
  kickAll(): Promise<void>;
  /** Contents of the Dovecot log file (auth_debug and the oauth2 passdb's debug are on). */
  log(): Promise<string>;
  /** SIGTERM to the master, waits for it and its ports, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface DovecotOptions {
  /** RFC 7662 endpoint; Dovecot POSTs `token=<bearer>` (form encoded) to it. */
  introspectUrl: string;
  /** Introspection response field that must equal the XOAUTH2 user (default 'username'). */
  usernameAttribute?: string;
  /** When set, the token's "scope" must contain it. */
  requiredScope?: string;
  /** Default '127.0.0.1'; use '127.0.0.2' so loopback clients are not "secured" (TLS enforcement). */
  listenAddr?: string;
  /** auth_mechanisms (default 'xoauth2'; ImapFlow prefers OAUTHBEARER whenever it is advertised). */
  mechanisms?: string;
  /**
   * Also accept Microsoft app-only tokens, as Exchange does for client credentials: the token must carry this
   * application permission as a role (e.g. 'IMAP.AccessAsApp') and the app's service principal must have been
   * given the XOAUTH2 user's mailbox. Dovecot's oauth2 passdb sends only the token, so a checkpassword passdb
   * (tried first, XOAUTH2 only) asks the introspection endpoint with the mailbox as `username`.
   */
  appRole?: string;
}

const DOVECOT_BIN = '/usr/sbin/dovecot';
const DOVEADM_BIN = '/usr/bin/doveadm';
const MAIL_UID = 65534;
const MAIL_GID = 65534;
const TLS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'tls');

/** True when Debian's Dovecot is installed (.ci/install-peers.sh). */
export function dovecotAvailable(): boolean {
  return existsSync(DOVECOT_BIN) && existsSync(DOVEADM_BIN);
}

// ---------------------------------------------------------------------------------------------
// Leak protection: Dovecot process groups still alive when this process exits are killed.
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
  });
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* already gone */
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves true when `p` settles within ms, false otherwise; leaves no timer behind. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Binds port 0 on addr `count` times at once and returns the (distinct) ports. */
async function freePorts(addr: string, count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen({ host: addr, port: 0, exclusive: true }, () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** Connects and returns the first line the server sends ('' if it accepts but says nothing), or null. */
function firstLine(host: string, port: number, timeoutMs = 1000): Promise<string | null> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = '';
    let connected = false;
    const done = (v: string | null) => {
      sock.removeAllListeners();
      sock.on('error', () => {});
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(timeoutMs, () => done(connected ? buf : null));
    sock.once('connect', () => {
      connected = true;
    });
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const i = buf.indexOf('\r\n');
      if (i >= 0) done(buf.slice(0, i));
    });
    sock.once('end', () => done(connected ? buf : null));
    sock.once('error', () => done(null));
  });
}

function canConnect(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean) => {
      sock.removeAllListeners();
      sock.on('error', () => {});
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

function run(file: string, args: string[], input?: Buffer | string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const code = typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null;
        reject(new CommandError(`${path.basename(file)} ${args.join(' ')} failed (exit ${code}): ${stderr.trim()}`, code, stderr));
      } else {
        resolve({ stdout, stderr });
      }
    });
    child.stdin?.on('error', () => {}); // EPIPE when the command exits early: its exit code tells the story
    child.stdin?.end(input ?? '');
  });
}

const readText = async (p: string) => {
  try {
    return await readFile(p, 'utf8');
  } catch {
    return '';
  }
};

// Maildir file names for seedMany. Dovecot gives new files their UIDs sorted by the time part of
// the name (seconds, then M<microseconds>), so a strictly increasing (sec, usec) keeps array order.
let maildirSeq = 0;

// ---------------------------------------------------------------------------------------------

export async function startDovecot(o: DovecotOptions): Promise<Dovecot> {
  if (!dovecotAvailable()) {
    throw new Error(`${DOVECOT_BIN} not found: run .ci/install-peers.sh (as root)`);
  }
  installExitHook();
  const host = o.listenAddr ?? '127.0.0.1';
  const mechanisms = o.mechanisms ?? 'xoauth2';
  const usernameAttribute = o.usernameAttribute ?? 'username';

  // Unix socket paths (base_dir/...) are limited to 108 bytes: keep the prefix short.
  const tmpRoot = os.tmpdir().length <= 40 ? os.tmpdir() : '/tmp';
  const dir = await mkdtemp(path.join(tmpRoot, 'mb-dovecot-'));
  await chmod(dir, 0o755); // mkdtemp makes 0700; mail processes (uid 65534) must traverse it
  const mailRoot = path.join(dir, 'mail');
  const runDir = path.join(dir, 'run');
  const tlsDir = path.join(dir, 'tls');
  await mkdir(mailRoot);
  await chown(mailRoot, MAIL_UID, MAIL_GID);
  await mkdir(path.join(dir, 'state'));
  await mkdir(tlsDir);
  await copyFile(path.join(TLS_DIR, 'cert.pem'), path.join(tlsDir, 'cert.pem'));
  await copyFile(path.join(TLS_DIR, 'key.pem'), path.join(tlsDir, 'key.pem'));
  await chmod(path.join(tlsDir, 'key.pem'), 0o600);

  const configPath = path.join(dir, 'dovecot.conf');
  const oauthPath = path.join(dir, 'dovecot-oauth2.conf.ext');
  const appCheckPath = path.join(dir, 'app-token-check.sh');
  if (o.appRole) {
    // checkpassword interface (https://cr.yp.to/checkpwd/interface.html, Dovecot's passdb checkpassword): fd 3 holds
    // "user\0password\0" (for XOAUTH2 the password is the bearer token); exit 1 refuses, 111 is a temporary failure,
    // success execs the reply program given as argv.
    await writeFile(
      appCheckPath,
      [
        '#!/bin/bash',
        "IFS= read -r -d '' user <&3; IFS= read -r -d '' token <&3",
        'user=${user,,}',
        `answer=$(curl -s --max-time 5 --data-urlencode "token=$token" --data-urlencode "username=$user" '${o.introspectUrl}') || exit 111`,
        `case "$answer" in *'"active":true'*'"username":"'"$user"'"'*) ;; *) exit 1 ;; esac`,
        `case "$answer" in *'"roles":"'*'${o.appRole}'*) exec "$@" ;; *) exit 1 ;; esac`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
  }
  const logPath = path.join(dir, 'dovecot.log');
  const stderrPath = path.join(dir, 'dovecot.stderr');

  await writeFile(
    oauthPath,
    [
      'introspection_mode = post',
      `introspection_url = ${o.introspectUrl}`,
      'force_introspection = yes',
      `username_attribute = ${usernameAttribute}`,
      'active_attribute = active',
      'active_value = true',
      ...(o.requiredScope ? [`scope = ${o.requiredScope}`] : []),
      'timeout_msecs = 5000',
      'debug = yes',
      '',
    ].join('\n'),
  );

  const config = (imapPort: number, imapsPort: number) => `# Generated by test/support/dovecot.ts. Nothing from /etc/dovecot is included.
instance_name = ${path.basename(dir)}
base_dir = ${runDir}
state_dir = ${dir}/state
protocols = imap
listen = ${host}
log_path = ${logPath}
auth_verbose = yes
auth_debug = yes

ssl = required
ssl_cert = <${tlsDir}/cert.pem
ssl_key = <${tlsDir}/key.pem
# XOAUTH2/OAUTHBEARER count as plaintext mechanisms: only offered after TLS (loopback is "secured", see listen).
disable_plaintext_auth = yes
auth_mechanisms = ${mechanisms}
# Default 2 s; with 0 a refusal takes ~0.5 s (the auth process's fixed failure-flush timer).
auth_failure_delay = 0
# auth_cache_size stays unset: every login is introspected, so revocation tests see it.

${o.appRole ? `# App-only tokens first (see DovecotOptions.appRole); a refusal here falls through to the oauth2 passdb.
passdb {
  driver = checkpassword
  mechanisms = xoauth2
  args = ${appCheckPath}
}
` : ''}passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = ${oauthPath}
}
userdb {
  driver = static
  # allow_all_users=yes: doveadm user lookups must not go to the oauth2 passdb (it cannot do lookups)
  args = uid=${MAIL_UID} gid=${MAIL_GID} home=${mailRoot}/%u allow_all_users=yes
}
mail_location = maildir:~/Maildir
mail_fsync = never
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
}
service imap-login {
  inet_listener imap {
    address = ${host}
    port = ${imapPort}
  }
  inet_listener imaps {
    address = ${host}
    port = ${imapsPort}
    ssl = yes
  }
}
# Brute-force penalty off: a bad-token test must not delay the next login from 127.0.0.1 by 2-15 s.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`;

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let imapPort = 0;
  let imapsPort = 0;
  let lastError = '';

  for (let attempt = 1; attempt <= 4 && !child; attempt++) {
    // Pitfall: stale sockets in base_dir make the first login wait 5 s. Always start fresh.
    await rm(runDir, { recursive: true, force: true });
    [imapPort, imapsPort] = (await freePorts(host, 2)) as [number, number];
    await writeFile(configPath, config(imapPort, imapsPort));

    const errFd = openSync(stderrPath, 'w');
    let c: ChildProcess;
    try {
      // detached: own process group (pgid = master pid), so stop() and the leak guards can kill
      // the master and every child at once.
      c = spawn(DOVECOT_BIN, ['-F', '-c', configPath], { stdio: ['ignore', errFd, errFd], detached: true });
    } finally {
      closeSync(errFd);
    }
    c.unref(); // a forgotten stop() must not keep the test process alive (the exit hook kills it)
    const pid = c.pid;
    let info: typeof exitInfo;
    const ex = new Promise<void>((resolve) => {
      c.once('exit', (code, signal) => {
        info = { code, signal };
        if (pid) liveGroups.delete(pid);
        resolve();
      });
      c.once('error', (err) => {
        info = { code: null, signal: null };
        lastError = String(err);
        resolve();
      });
    });
    if (pid) liveGroups.add(pid);

    // Ready = the STARTTLS port sends its greeting (imap-login and auth are up) and the implicit
    // TLS port accepts. A bare TCP connect is not enough: the master's listen backlog accepts early.
    const deadline = Date.now() + 15_000;
    let ready = false;
    while (!info && Date.now() < deadline) {
      const greeting = await firstLine(host, imapPort);
      if (greeting?.startsWith('* OK') && (await canConnect(host, imapsPort))) {
        ready = true;
        break;
      }
      await sleep(10);
    }
    if (ready && !info) {
      child = c;
      exited = ex.then(() => {
        exitInfo = info;
      });
      break;
    }
    const diag = `${await readText(stderrPath)}\n${await readText(logPath)}`.trim();
    const failure = info as typeof exitInfo;
    lastError = `dovecot ${failure ? `exited (code ${failure.code}, signal ${failure.signal})` : 'was not ready within 15 s'}: ${diag || lastError}`;
    if (pid) killGroup(pid, 'SIGKILL');
    await ex;
    // A port taken between freePorts() and Dovecot's bind() is worth a retry; anything else is not.
    if (!/Address already in use/i.test(diag)) break;
  }
  if (!child?.pid) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(lastError);
  }
  const masterPid = child.pid;

  // Watchdog for a test process that dies without running 'exit' hooks: kill the group, remove the dir.
  const watchdog = spawn(
    '/bin/sh',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null && [ -d "$3" ]; do sleep 1; done; [ -d "$3" ] || exit 0; ' +
        'kill -TERM "-$2" 2>/dev/null; sleep 2; kill -KILL "-$2" 2>/dev/null; rm -rf "$3"',
      'mb-dovecot-watchdog',
      String(process.pid),
      String(masterPid),
      dir,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.on('error', () => {});
  watchdog.unref();

  const doveadm = (args: string[], input?: Buffer | string) => run(DOVEADM_BIN, ['-c', configPath, ...args], input);

  const ensureMailbox = async (user: string, folder: string) => {
    if (folder.toUpperCase() === 'INBOX') {
      // Makes Dovecot create the user's home and Maildir itself, owned by the mail uid.
      await doveadm(['mailbox', 'status', '-u', user, 'messages', 'INBOX']);
      return;
    }
    try {
      await doveadm(['mailbox', 'create', '-u', user, folder]);
    } catch (err) {
      if (!/exists/i.test(String(err))) throw err;
    }
  };

  const uidNext = async (user: string, folder: string): Promise<number> => {
    const { stdout } = await doveadm(['-f', 'tab', 'mailbox', 'status', '-u', user, 'uidnext', folder]);
    const n = Number(stdout.trim().split('\n').pop()?.split('\t').pop()); // header line, then "<mailbox>\t<uidnext>"
    if (!Number.isInteger(n) || n <= 0) throw new Error(`unexpected doveadm mailbox status output: ${stdout}`);
    return n;
  };

  let stopping: Promise<void> | undefined;

  const dovecot: Dovecot = {
    host,
    imapPort,
    imapsPort,
    dir,
    configPath,

    async seed(user, raw, opts = {}) {
      const folder = opts.folder ?? 'INBOX';
      await ensureMailbox(user, folder);
      // doveadm save cannot set flags; the saved message gets the folder's UIDNEXT.
      const uid = opts.seen ? await uidNext(user, folder) : 0;
      await doveadm(['save', '-u', user, '-m', folder], raw);
      if (opts.seen) await doveadm(['flags', 'add', '-u', user, '\\Seen', 'mailbox', folder, 'uid', String(uid)]);
    },

    async seedMany(user, raws, opts = {}) {
      const folder = opts.folder ?? 'INBOX';
      await ensureMailbox(user, folder);
      const { stdout } = await doveadm(['mailbox', 'path', '-u', user, folder]);
      const box = stdout.trim().split('\n').pop()?.trim();
      if (!box || !path.isAbsolute(box)) throw new Error(`doveadm mailbox path gave ${JSON.stringify(stdout)}`);
      for (const sub of ['cur', 'new', 'tmp']) {
        const d = path.join(box, sub);
        if (!existsSync(d)) {
          await mkdir(d, { mode: 0o700 }); // normally Dovecot has created them already
          await chown(d, MAIL_UID, MAIL_GID);
        }
      }
      // Maildir delivery: write to tmp/, then rename into new/ (or cur/ with the S flag). Synchronous
      // calls in chunks (yielding in between) are several times faster than thousands of async ones.
      const target = path.join(box, opts.seen ? 'cur' : 'new');
      const baseSec = Math.floor(Date.now() / 1000);
      const chunk = 250;
      for (let i = 0; i < raws.length; i += chunk) {
        for (const raw of raws.slice(i, i + chunk)) {
          const seq = ++maildirSeq;
          const buf = typeof raw === 'string' ? Buffer.from(raw) : raw;
          const sec = baseSec + Math.floor(seq / 1_000_000);
          const name = `${sec}.M${seq % 1_000_000}P${process.pid}Q${seq}.mailbridge,S=${buf.length}`;
          const tmp = path.join(box, 'tmp', name);
          writeFileSync(tmp, buf, { mode: 0o600 });
          chownSync(tmp, MAIL_UID, MAIL_GID);
          renameSync(tmp, path.join(target, opts.seen ? `${name}:2,S` : name));
        }
        await new Promise<void>((r) => setImmediate(r));
      }
    },

    async flags(user, folder = 'INBOX') {
      const { stdout } = await doveadm(['-f', 'tab', 'fetch', '-u', user, 'uid flags', 'mailbox', folder, 'all']);
      const out: Array<{ uid: number; flags: string[] }> = [];
      for (const line of stdout.split('\n').slice(1)) {
        // First line is the header "uid\tflags".
        if (!line) continue;
        const [uid, flags = ''] = line.split('\t');
        out.push({ uid: Number(uid), flags: flags.split(' ').filter((f) => f.length > 0 && f !== '\\Recent') });
      }
      return out.sort((a, b) => a.uid - b.uid);
    },

    async kickAll() {
      try {
        await doveadm(['kick', '*']);
      } catch (err) {
        // Exit 68 (EX_NOUSER): nobody was logged in.
        if (!(err instanceof CommandError && err.exitCode === 68)) throw err;
      }
    },

    log() {
      return readText(logPath);
    },

    stop() {
      stopping ??= (async () => {
        if (!exitInfo) {
          // SIGTERM to the master (pid from run/master.pid) and, through the process group, to
          // every child at once. The master alone skips children that have not yet reported
          // their initial status (e.g. an imap-login forked for the last connection) and then
          // waits for them for many seconds; signalling the group avoids that.
          const fromFile = Number((await readText(path.join(runDir, 'master.pid'))).trim());
          try {
            process.kill(fromFile > 0 ? fromFile : masterPid, 'SIGTERM');
          } catch {
            /* already gone */
          }
          killGroup(masterPid, 'SIGTERM');
          // A process the master forks while the first SIGTERM is in flight would be missed, so
          // repeat it to the group a few times; SIGKILL the group if the master still lingers.
          let exitedInTime = false;
          for (let i = 0; i < 10 && !exitedInTime; i++) {
            exitedInTime = await within(exited, 300);
            if (!exitedInTime) killGroup(masterPid, 'SIGTERM');
          }
          if (!exitedInTime) {
            killGroup(masterPid, 'SIGKILL');
            await within(exited, 5_000);
          }
        }
        killGroup(masterPid, 'SIGKILL'); // orphaned children, if any (normally none: ESRCH)
        liveGroups.delete(masterPid);
        // The listeners close with the last process that holds them.
        const portDeadline = Date.now() + 5_000;
        while (Date.now() < portDeadline) {
          if (!(await canConnect(host, imapPort, 200)) && !(await canConnect(host, imapsPort, 200))) break;
          await sleep(20);
        }
        await rm(dir, { recursive: true, force: true });
        // The watchdog would exit by itself within ~1 s now that the dir is gone.
        try {
          if (watchdog.pid && watchdog.exitCode === null) process.kill(-watchdog.pid, 'SIGTERM'); // sh and its sleep
        } catch {
          /* gone */
        }
      })();
      return stopping;
    },
  };
  return dovecot;
}
