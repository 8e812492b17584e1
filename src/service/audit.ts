// Moved to service/audit/audit-hash.ts; kept so parallel branches still import. Use AuditLog (service/audit/audit-log.ts).
export { auditHasher, auditWrite } from './audit/audit-hash.ts'
