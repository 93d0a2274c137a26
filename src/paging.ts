import { Type } from 'typebox'

/**
 * `?limit=&cursor=` (design.md §6), one definition for every list that pages: 1–500 items, after the id given
 * as cursor. Ids are hex (db/ids.ts), so a cursor that is not one is refused instead of paging from nowhere.
 */
export const Limit = Type.Optional(Type.Integer({ minimum: 1, maximum: 500 }))
export const Cursor = Type.Optional(Type.String({ pattern: '^[0-9a-f]{1,64}$', description: 'The last id of the previous page' }))
