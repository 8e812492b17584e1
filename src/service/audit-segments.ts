// Moved to service/audit/segments.ts; kept so parallel branches still import.
export { ANCHOR_METHOD, anchorNotes, masterKeyId, parseAnchor, ROTATION_METHOD, rowsDigest, verifyAuditLog, type Anchor } from './audit/segments.ts'
