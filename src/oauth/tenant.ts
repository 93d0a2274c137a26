import { Type } from 'typebox'
import { invalid } from '../errors.ts'
import type { ProviderSpec } from './providers.ts'

/** A Microsoft directory (tenant) id: a GUID, or a verified domain such as contoso.onmicrosoft.com. */
export const TenantId = Type.Union([Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9.-]+$' }), Type.Null()], {
  description: 'Only for "outlook_app": the Directory (tenant) ID the app requests tokens in',
})

/** App-only access names its tenant; other authentications have none. */
export function checkTenant(p: ProviderSpec | undefined, value: string | null): string | null {
  const tenant = value?.trim() || null
  if (!p?.needsTenant) {
    if (tenant) throw invalid('tenant_id', 'tenant_id is only for authentication "outlook_app" (Microsoft app-only access).')
    return null
  }
  if (!tenant) throw invalid('tenant_id', `${p.article} ${p.label} server needs its tenant_id: the Directory (tenant) ID from the app's Overview page in Azure (a GUID), or the tenant's domain such as contoso.onmicrosoft.com.`)
  if (['common', 'organizations', 'consumers'].includes(tenant.toLowerCase())) {
    throw invalid('tenant_id', `Client credentials need the tenant itself, not "${tenant}" (Microsoft refuses them there: AADSTS9001023).`)
  }
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(tenant) && !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(tenant)) {
    throw invalid('tenant_id', `"${tenant}" is neither a tenant id (a GUID) nor a domain such as contoso.onmicrosoft.com.`)
  }
  return tenant.toLowerCase()
}
