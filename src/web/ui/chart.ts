import { html, raw, type Html } from '../../html.ts'
import { HOURS, type Hourly } from '../../mailboxes/hourly.ts'

const SERIES = [
  { key: 'sent', label: 'Sent', cls: 'sent' },
  { key: 'failed', label: 'Failed', cls: 'failed' },
  { key: 'received', label: 'Received', cls: 'received' },
] as const

const W = 720
const H = 180
const LEFT = 34
const BOTTOM = 22
const TOP = 8

const hourLabel = (iso: string) => iso.slice(11, 16)
const total = (xs: number[]) => xs.reduce((a, n) => a + n, 0)

/**
 * Sent, failed and received per hour over the last 24 hours as server-rendered SVG (no script, no library), with
 * the same numbers in words and in a table for whoever does not read the picture.
 */
export function hourlyChart(o: { id: string; title: string; hours: string[]; counts: Hourly }): Html {
  const { hours, counts } = o
  const max = Math.max(1, ...SERIES.flatMap((s) => counts[s.key]))
  const plotH = H - TOP - BOTTOM
  const slot = (W - LEFT) / HOURS
  const bar = Math.max(2, Math.floor((slot - 4) / SERIES.length))
  const y = (n: number) => TOP + plotH - (n / max) * plotH
  const totals = SERIES.map((s) => `${total(counts[s.key])} ${s.label.toLowerCase()}`).join(', ')
  const bars = hours.flatMap((h, i) =>
    SERIES.map((s, j) => {
      const n = counts[s.key][i]!
      if (!n) return ''
      const x = LEFT + i * slot + 2 + j * bar
      return html`<rect class="${s.cls}" x="${x.toFixed(1)}" y="${y(n).toFixed(1)}" width="${bar - 1}" height="${(TOP + plotH - y(n)).toFixed(1)}"><title>${hourLabel(h)} UTC: ${n} ${s.label.toLowerCase()}</title></rect>`
    }),
  )
  const ticks = hours.map((h, i) => (i % 3 === 0 ? html`<text x="${(LEFT + i * slot + slot / 2).toFixed(1)}" y="${H - 6}" text-anchor="middle">${hourLabel(h)}</text>` : ''))
  const svg = html`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${o.id}-title ${o.id}-desc" focusable="false">
<title id="${o.id}-title">${o.title}</title><desc id="${o.id}-desc">Per hour, UTC. In all: ${totals}.</desc>
<line class="axis" x1="${LEFT}" y1="${TOP + plotH}" x2="${W}" y2="${TOP + plotH}"/><line class="grid" x1="${LEFT}" y1="${TOP}" x2="${W}" y2="${TOP}"/>
<text x="${LEFT - 4}" y="${TOP + 4}" text-anchor="end">${max}</text><text x="${LEFT - 4}" y="${TOP + plotH}" text-anchor="end">0</text>
${bars}${ticks}</svg>`
  const rows = hours.map((h, i) => html`<tr><th scope="row">${hourLabel(h)}</th>${SERIES.map((s) => html`<td>${counts[s.key][i]}</td>`)}</tr>`)
  return html`<figure class="chart" aria-labelledby="${o.id}-caption"><figcaption id="${o.id}-caption"><strong>${o.title}</strong>: ${totals}</figcaption>
${svg}
<p class="legend">${SERIES.map((s) => html`<span class="key ${s.cls}">${raw('<span class="swatch" aria-hidden="true"></span>')}${s.label}</span>`)}</p>
<details><summary>Numbers per hour</summary><div class="table-wrap"><table class="numbers"><thead><tr><th scope="col">Hour (UTC)</th>${SERIES.map((s) => html`<th scope="col">${s.label}</th>`)}</tr></thead><tbody>${rows}</tbody></table></div></details></figure>`
}
