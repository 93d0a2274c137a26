import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

// The files an operator copies onto a server (deploy/): each is checked by the tool that will read it, the way
// systemd and nginx would read them at start. Both tools come from Debian's packages (.ci/install-peers.sh).
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const TLS = join(ROOT, 'test/support/tls')

function run(command: string, args: string[]) {
  const r = spawnSync(command, args, { encoding: 'utf8' })
  if (r.error) throw new Error(`${command} could not run (${r.error.message}): run .ci/install-peers.sh first`)
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

function scratch(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-deploy-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** systemd-analyze verify exits 0 on directives it ignores (it only warns), so any output counts as a fault. */
function verifyUnit(path: string) {
  return run('systemd-analyze', ['verify', path])
}

const unit = readFileSync(join(ROOT, 'deploy/mailbridge.service'), 'utf8')

test('deploy/mailbridge.service: systemd-analyze verify reads it without a warning', () => {
  const r = verifyUnit(join(ROOT, 'deploy/mailbridge.service'))
  assert.equal(r.status, 0, r.output)
  assert.equal(r.output.trim(), '', `systemd-analyze verify warned:\n${r.output}`)
})

test('deploy/mailbridge.service: the check catches a broken unit (a misspelt value, a missing program)', (t) => {
  const dir = scratch(t)
  const broken = join(dir, 'mailbridge.service')
  writeFileSync(broken, unit.replace('ProtectSystem=strict', 'ProtectSystem=very'))
  assert.match(verifyUnit(broken).output, /protect system value/)
  writeFileSync(broken, unit.replace('ExecStart=/usr/bin/node', 'ExecStart=/usr/bin/no-such-node'))
  assert.notEqual(verifyUnit(broken).status, 0)
})

test('deploy/mailbridge.service: hardened (systemd-analyze security rates its exposure at most 2.0 of 10)', () => {
  for (const line of ['User=mailbridge', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/mailbridge', 'CapabilityBoundingSet=']) {
    assert.ok(unit.split('\n').includes(line), `the unit sets ${line}`)
  }
  const r = run('systemd-analyze', ['security', '--offline=yes', '--threshold=20', join(ROOT, 'deploy/mailbridge.service')])
  assert.equal(r.status, 0, r.output.split('\n').slice(-3).join('\n'))
})

const site = readFileSync(join(ROOT, 'deploy/nginx.conf'), 'utf8')

/** nginx -t on the example inside a minimal main configuration, with the test certificates in place of the operator's. */
function nginxTest(dir: string, siteText: string) {
  writeFileSync(
    join(dir, 'site.conf'),
    siteText.replace('/etc/ssl/mailbridge/fullchain.pem', join(TLS, 'cert.pem')).replace('/etc/ssl/mailbridge/privkey.pem', join(TLS, 'key.pem')),
  )
  writeFileSync(join(dir, 'nginx.conf'), `pid ${dir}/nginx.pid;\nevents {}\nhttp {\n  access_log off;\n  include ${dir}/site.conf;\n}\n`)
  return run('nginx', ['-t', '-q', '-e', join(dir, 'error.log'), '-p', dir, '-c', join(dir, 'nginx.conf')])
}

test('deploy/nginx.conf: nginx -t accepts it, and refuses it broken', (t) => {
  const dir = scratch(t)
  const ok = nginxTest(dir, site)
  assert.equal(ok.status, 0, ok.output)
  assert.notEqual(nginxTest(dir, site.replace('proxy_request_buffering off;', 'proxy_request_buffering sometimes;')).status, 0)
})

test('deploy/nginx.conf: the OAuth redirect targets, /admin and the API are proxied; /metrics is internal', () => {
  for (const path of ['= /microsoft_outlook/confirm', '= /google_gmail/confirm', '/admin', '/api/v1/']) {
    assert.match(site, new RegExp(`location ${path.replace(/[/.]/g, '\\$&')}\\s+\\{ proxy_pass http://mailbridge; \\}`), `${path} reaches Mailbridge`)
  }
  const metrics = /location = \/metrics \{([^}]*)\}/.exec(site)
  assert.ok(metrics, 'a location for /metrics')
  assert.match(metrics[1]!, /deny all;/)
  assert.match(site, /client_max_body_size 64m;/, 'a 35 MB mail (47 MB of base64) gets through to Mailbridge, which answers 413 itself above its limit')
})
