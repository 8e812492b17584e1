// Moved to service/audit/audit-log.ts; kept so parallel branches still import.
export { AuditLog, auditEvent, type AuditFields } from './audit/audit-log.ts'
