import { parseArgs, type ParseArgsConfig } from 'node:util'

type Options = NonNullable<ParseArgsConfig['options']>

/** The commands main.ts runs, each with the only options it takes (design.md §10 "Front door"). */
export const commands = {
  serve: {
    usage: 'serve [--role all|web|worker]',
    about: 'start the HTTP API and admin UI (web), the queue and fetchers (worker), or both (all, the default)',
    options: { role: { type: 'string', default: 'all' } },
  },
  migrate: { usage: 'migrate', about: 'apply database migrations and exit', options: {} },
  'rotate-key': {
    usage: 'rotate-key [--batch 500]',
    about:
      're-seal every stored secret under the first key of MAILBRIDGE_SECRET_KEY (or of data/secret.key), while nodes keep running; prints progress and the count of values still under old keys',
    options: { batch: { type: 'string' } },
  },
  'generate-certificate': {
    usage: 'generate-certificate [--out mailbridge-outlook.cer] [--days 730] [--subject Mailbridge]',
    about:
      'make a key and a self-signed certificate for the Outlook app: the key stored encrypted (pending until "Use this certificate" in General Settings), the public certificate written to --out for Azure',
    options: { out: { type: 'string' }, days: { type: 'string' }, subject: { type: 'string' } },
  },
  sandbox: { usage: 'sandbox', about: 'Mailbridge with a Microsoft emulator, an SMTP peer (and Dovecot) on this machine: walk the guide offline', options: {} },
  help: { usage: 'help [command]', about: 'print this help, or one command\'s', options: {} },
} as const satisfies Record<string, { usage: string; about: string; options: Options }>

export type Command = Exclude<keyof typeof commands, 'help'>

const HELP: Options = { help: { type: 'boolean', short: 'h' } }

const isCommand = (name: string): name is keyof typeof commands => Object.hasOwn(commands, name)

export function usage(only?: keyof typeof commands): string {
  const shown = only ? [only] : (Object.keys(commands) as Array<keyof typeof commands>)
  const lines = shown.map((name) => `  ${commands[name].usage}\n      ${commands[name].about}`)
  return `Usage: mailbridge <command> [options]   (no command: serve)\n\nCommands:\n${lines.join('\n')}\n\nConfiguration is read from the environment: see the README's "Configuration".\n`
}

/** What the command line asks for: run a command, print help (exit 0), or a refusal that names the bad word (exit 2). */
export type Invocation =
  | { kind: 'run'; command: Command; values: Record<string, string | boolean | Array<string | boolean> | undefined> }
  | { kind: 'help'; text: string }
  | { kind: 'refused'; message: string }

/**
 * Parse strictly: a typo such as `--rol web` must stop the process, not start a server that ignores it. Help
 * is decided before anything opens a port or a database.
 */
export function readCommandLine(argv: string[]): Invocation {
  const strictly = (options: Options) => parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...HELP, ...options } })
  // Node's first sentence names the option: "Unknown option '--rol'".
  const refusal = (e: unknown, name?: string): Invocation => ({ kind: 'refused', message: (e as Error).message.split('. ')[0]! + (name ? ` for "${name}"` : '') })
  let name
  try {
    // First with every command's options, so that the value of `--role web` is not taken for the command.
    name = strictly(Object.assign({}, ...Object.values(commands).map((c) => c.options))).positionals[0] ?? 'serve'
  } catch (e) {
    return refusal(e)
  }
  if (!isCommand(name)) return { kind: 'refused', message: `unknown command "${name}"` }
  let parsed
  try {
    parsed = strictly(commands[name].options)
  } catch (e) {
    return refusal(e, name)
  }
  const { values, positionals } = parsed
  const rest = positionals.slice(1)
  if (name === 'help') {
    const topic = rest[0]
    if (topic !== undefined && !isCommand(topic)) return { kind: 'refused', message: `unknown command "${topic}"` }
    return rest.length > 1 ? { kind: 'refused', message: `unexpected argument "${rest[1]}"` } : { kind: 'help', text: usage(topic) }
  }
  if (values.help) return { kind: 'help', text: usage(positionals.length ? name : undefined) }
  if (rest.length) return { kind: 'refused', message: `unexpected argument "${rest[0]}" for "${name}"` }
  return { kind: 'run', command: name, values }
}
