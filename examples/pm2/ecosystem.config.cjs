// rekey under PM2.
//   start:   pm2 start ecosystem.config.cjs --env production
//   rotate:  npx rekey --env /etc/rekey/rekey.env rotate && pm2 reload rekey --update-env
// `pm2 reload` restarts the instances one at a time (cluster mode), so the service stays up
// while every instance picks up the new keys. Secrets are read from the env file named by
// REKEY_ENV_FILE at start, never written here. See docs/deploy/pm2.md.
'use strict'

const fs = require('node:fs')

/** The variables of an env file (KEY=value lines), read when PM2 loads this file. */
function readEnvFile(file) {
  const env = {}
  if (!fs.existsSync(file)) return env
  for (const line of fs.readFileSync(file, 'utf8').split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line)
    if (match === null || line.trimStart().startsWith('#')) continue
    env[match[1]] = match[2].replace(/^(['"])(.*)\1$/, '$2')
  }
  return env
}

const envFile = process.env.REKEY_ENV_FILE || '/etc/rekey/rekey.env'

module.exports = {
  apps: [
    {
      name: 'rekey',
      script: './node_modules/rekey/bin/rekey.js',
      args: 'serve',
      exec_mode: 'cluster',
      instances: 2,
      // SIGTERM drains in-flight requests; give it longer than the service's 10 s drain.
      kill_timeout: 15000,
      listen_timeout: 10000,
      max_memory_restart: '512M',
      env: {
        NODE_ENV: 'development',
        REKEY_PORT: '3000',
      },
      env_production: {
        NODE_ENV: 'production',
        REKEY_HOST: '127.0.0.1',
        REKEY_PORT: '3000',
        ...readEnvFile(envFile),
      },
    },
  ],
}
