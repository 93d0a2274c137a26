// Worker threads do not inherit the main thread's tsx hooks on Node 20: register them, then load the TypeScript.
import { register } from 'tsx/esm/api'

register()
await import('./parse-worker.ts')
