/** The smallest server-side HTML kit: escape everything, one layout. The admin UI builds on it. */
export const esc = (v: unknown): string =>
  String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)

export interface Html {
  readonly __html: string
}
export const raw = (s: string): Html => ({ __html: s })

const NON_ASCII = /[^\x00-\x7f]/

/**
 * Whether an interpolation lands in element text (not inside a tag, where it is an attribute value, nor in an
 * element whose content is text only). The templates' static parts are well-formed, and escaped values hold no
 * `<` or `>`, so the last `<` tells.
 */
const inText = (out: string): boolean => {
  const lt = out.lastIndexOf('<')
  if (lt < 0) return true
  if (lt > out.lastIndexOf('>')) return false
  return !/^<(textarea|title|option|script|style)\b/i.test(out.slice(lt))
}

/**
 * Tagged template: interpolations are escaped unless they are Html (or arrays of Html). A string in element text
 * that holds anything beyond ASCII (right-to-left letters, U+202E RIGHT-TO-LEFT OVERRIDE and the other bidi
 * controls) is isolated in <bdi>, so it cannot reorder the text around it: `invoice‮fdp.exe` stays one run
 * that cannot pass for `invoice.pdf` beside its neighbours (UAX #9 isolates; issue 21 item 11). ASCII holds no
 * strong right-to-left character and no bidi control, so it has nothing to isolate.
 * @see https://html.spec.whatwg.org/multipage/text-level-semantics.html#the-bdi-element
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!
  values.forEach((v, i) => {
    const one = (x: unknown): string => {
      if (x && typeof x === 'object' && '__html' in x) return (x as Html).__html
      const text = esc(x)
      return typeof x === 'string' && NON_ASCII.test(x) && inText(out) ? `<bdi>${text}</bdi>` : text
    }
    out += (Array.isArray(v) ? v.map(one).join('') : v === false || v === null || v === undefined ? '' : one(v)) + strings[i + 1]!
  })
  return raw(out)
}

/** Control and invisible formatting characters: C0/C1 controls, bidi embeddings, overrides, isolates and marks, zero-width characters. */
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g

/**
 * A name whose every control character shows as its escape (`\u202E`), for attachment names: a file called
 * `invoice\u202Efdp.exe` must read as that, not as `invoiceexe.pdf`.
 */
export function visibleControls(name: string): Html {
  const shown = esc(name).replace(CONTROLS, (c) => {
    const code = `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`
    return `<span class="ctl" title="a hidden control character">${code}</span>`
  })
  return raw(`<bdi>${shown}</bdi>`)
}

export const STYLE = `
:root{--fg:#1f2328;--muted:#59636e;--bg:#fff;--line:#d1d9e0;--brand:#714b67;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--info:#0969da}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:#f6f8fa}
header{background:var(--brand);color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none}header a:focus,header a:hover{text-decoration:underline}header .brand{font-weight:700;margin-right:1rem}
main{max-width:1200px;margin:1.5rem auto;padding:0 1rem}section.card{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:1.2rem 1.4rem;margin-bottom:1.2rem}
h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.15rem;margin:0 0 .8rem}
label{display:block;font-weight:600;margin:.7rem 0 .2rem}input[type=text],input[type=email],input[type=password],input[type=number],input[type=date],input[type=url],select,textarea{width:100%;max-width:32rem;padding:.45rem .6rem;border:1px solid var(--line);border-radius:6px;font:inherit}
input:focus,select:focus,button:focus,a:focus{outline:3px solid #9ec5fe;outline-offset:1px}
.check{display:flex;gap:.5rem;align-items:center;font-weight:600}.check input{width:1.1rem;height:1.1rem}
button,.button{display:inline-block;background:var(--brand);color:#fff;border:0;border-radius:6px;padding:.5rem 1rem;font:inherit;cursor:pointer;text-decoration:none;margin:.8rem .4rem 0 0}
button.secondary,.button.secondary{background:#fff;color:var(--brand);border:1px solid var(--brand)}button.danger{background:var(--bad)}
.tag{display:inline-block;border-radius:999px;padding:.15rem .7rem;font-size:.85rem;font-weight:600;color:#fff}.tag.ok{background:var(--ok)}.tag.bad{background:var(--bad)}.tag.muted{background:var(--muted);color:#fff}
.banner{border-radius:6px;padding:.7rem 1rem;margin-bottom:1rem}.banner.ok{background:#dafbe1;border:1px solid var(--ok)}.banner.bad{background:#ffebe9;border:1px solid var(--bad)}.banner.warn{background:#fff8c5;border:1px solid var(--warn)}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}th{font-size:.85rem;color:var(--muted)}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em;word-break:break-all}.hint{color:var(--muted);font-size:.9rem;margin:.2rem 0}
.skip{position:absolute;left:-999px}.skip:focus{left:.5rem;top:.5rem;background:#fff;color:var(--brand);padding:.3rem .6rem;border-radius:4px}
header nav ul{list-style:none;margin:0;padding:0;display:flex;gap:1.2rem;flex-wrap:wrap}header nav li.group{display:flex;gap:.6rem;align-items:baseline}header nav li.group ul{gap:.8rem}
header .group-title{font-size:.75rem;text-transform:uppercase;letter-spacing:.05em;opacity:.75}header a[aria-current=page]{text-decoration:underline;text-underline-offset:4px}
header form.logout{margin-left:auto}button.link{background:none;border:0;color:#fff;padding:0;margin:0;text-decoration:underline;cursor:pointer;font:inherit}
form.inline{display:inline}form.inline button{margin:0 .3rem 0 0;padding:.25rem .7rem;font-size:.9rem}
fieldset{border:1px solid var(--line);border-radius:6px;padding:.6rem 1rem 1rem;margin:1rem 0}legend{font-weight:700;padding:0 .3rem}fieldset.choice .check{margin:.3rem 0}fieldset.choice label{margin:0;font-weight:500}
.check label{margin:0}.field.invalid input,.field.invalid select{border-color:var(--bad)}.error{color:var(--bad);font-weight:600;margin:.2rem 0}
.tag.set{background:var(--ok)}.tag.warn{background:var(--warn)}.copy{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}.copy code{background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:.35rem .5rem}.copy button{margin:0}
.actions{display:flex;gap:.4rem;flex-wrap:wrap;align-items:center}.links a{margin-right:1.2rem}.setting{border-top:1px solid var(--line);padding-top:.6rem;margin-top:.8rem}
.filters{display:flex;gap:.8rem;align-items:end;flex-wrap:wrap}.filters .field{margin:0}.filters button{margin:0}.muted{color:var(--muted)}
section.card.narrow{max-width:26rem;margin:3rem auto}
.button.small{padding:.25rem .7rem;font-size:.9rem;margin:0 .3rem 0 0}.skip-label{position:absolute;left:-999px}
.check .hint{font-weight:400;margin-left:.4rem}span.label{display:block;font-weight:600;margin:.7rem 0 .2rem}
.tag.info{background:var(--info)}td.addr,td .muted{overflow-wrap:anywhere}table.queue td.outcome{min-width:14rem}table.fields th{width:9rem}
table.queue .reason,table.mailboxes .reason{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:3;overflow:hidden}
.menu-toggle{display:none;background:transparent;border:1px solid #fff;color:#fff;margin:0;padding:.3rem .8rem}
@media (max-width:700px){
main{padding:0 .5rem;margin:1rem auto;overflow-wrap:anywhere}section.card{padding:.9rem .8rem}header{padding:.6rem .8rem;gap:.6rem}
.js-nav .menu-toggle{display:inline-block}header nav{flex-basis:100%;order:3}.js-nav #main-menu{display:none}.js-nav #main-menu.open{display:flex}
header nav ul,header nav li.group{flex-direction:column;gap:.4rem}header nav li.group ul{gap:.4rem;padding-left:.8rem}header form.logout{margin-left:auto}
table.stack thead{position:absolute;left:-9999px}table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}
table.stack tr{border-bottom:1px solid var(--line);padding:.5rem 0}table.stack td{border:0;padding:.15rem 0;min-width:0}
table.stack td[data-label]::before{content:attr(data-label);display:block;font-size:.8rem;font-weight:600;color:var(--muted)}
table:not(.stack){display:block;overflow-x:auto}.filters{flex-direction:column;align-items:stretch}
}
bdi{unicode-bidi:isolate}.ctl{font-family:ui-monospace,monospace;background:#fff8c5;color:var(--bad);border-radius:3px;padding:0 .15em}
td .reason{max-width:28rem;white-space:pre-wrap;overflow-wrap:anywhere}td.nowrap{white-space:nowrap}.pager{margin-top:1rem}
figure.chart{margin:0}figure.chart figcaption{margin-bottom:.4rem}svg.chart{width:100%;height:auto;display:block}svg.chart text{font-size:11px;fill:var(--muted)}
svg.chart .axis{stroke:var(--muted)}svg.chart .grid{stroke:var(--line);stroke-dasharray:3 3}rect.sent,.key.sent .swatch{fill:var(--ok);background:var(--ok)}rect.failed,.key.failed .swatch{fill:var(--bad);background:var(--bad)}rect.received,.key.received .swatch{fill:var(--info);background:var(--info)}
.legend{display:flex;gap:1rem;flex-wrap:wrap;margin:.4rem 0}.key .swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.35rem;vertical-align:-.1rem}
.thread-tree,.thread-tree ul{list-style:none;margin:0;padding:0}.thread-tree ul{padding-left:1.1rem;margin-left:.3rem;border-left:2px solid var(--line)}.msg{padding:.35rem 0 .35rem .5rem}
.bad-text{color:var(--bad);font-weight:600}.table-wrap{overflow-x:auto}.servers{font-size:.9rem}.token+.token{margin-top:.5rem}progress{width:12rem;max-width:100%;vertical-align:middle}
`

/** Progressive enhancement only: copy buttons and live show/hide; every form works without it. */
export const SCRIPT = `
for (const b of document.querySelectorAll('[data-copy]')) {
  b.hidden = false
  b.addEventListener('click', async () => {
    const text = document.getElementById(b.dataset.copy).textContent
    try { await navigator.clipboard.writeText(text); b.textContent = 'Copied' } catch { b.textContent = 'Select and copy the text' }
  })
}
for (const c of document.querySelectorAll('input[type=checkbox][aria-controls]')) {
  const target = document.getElementById(c.getAttribute('aria-controls'))
  const sync = () => { target.hidden = !c.checked }
  c.addEventListener('change', sync)
}
// A first sync's bar moves while the page stays open: the running fetches' progress, every 2 s, until none runs.
const syncing = () => document.querySelectorAll('progress[data-sync]')
const followSync = async () => {
  try {
    const r = await fetch('/admin/sync-progress', { headers: { accept: 'application/json' } })
    const running = new Map((await r.json()).servers.map((s) => [s.id, s]))
    for (const bar of r.ok ? syncing() : []) {
      const s = running.get(bar.dataset.sync)
      const text = document.getElementById(bar.id + '-text')
      if (s) { bar.max = s.total; bar.value = s.done; if (text) text.textContent = s.done + ' of ' + s.total + ' new messages stored' }
      else { bar.value = bar.max; bar.removeAttribute('data-sync'); if (text) text.textContent = 'Fetched: reload the page for the new figures' }
    }
  } catch {}
  if (syncing().length) setTimeout(followSync, 2000)
}
if (syncing().length) setTimeout(followSync, 2000)
// Narrow screens: the menu folds behind a button (without this script it stays open, as it always was).
const toggle = document.querySelector('.menu-toggle')
if (toggle) {
  const nav = document.getElementById(toggle.getAttribute('aria-controls'))
  toggle.hidden = false
  document.body.classList.add('js-nav')
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true'
    toggle.setAttribute('aria-expanded', String(open))
    nav.classList.toggle('open', open)
  })
}
`

export function page(title: string, body: Html, o: { nav?: Html } = {}): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)} · Mailbridge</title><style>${STYLE}</style></head><body>
<header>${o.nav ? o.nav.__html : '<span class="brand">Mailbridge</span>'}</header><main id="main">${body.__html}</main><script>${SCRIPT}</script></body></html>`
}
