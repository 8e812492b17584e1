// Moved to config/master-key.ts (the one master-key resolver); kept so parallel branches still import.
export { masterKeyFileOf, resolveMasterKey } from '../config/master-key.ts'
