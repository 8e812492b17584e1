/**
 * Durations: seconds as a number, or a string such as `90`, `30s`, `15m`, `1h`, `7d`, `2w`.
 */

const UNITS: Readonly<Record<string, number>> = {
  s: 1, sec: 1, secs: 1, second: 1, seconds: 1,
  m: 60, min: 60, mins: 60, minute: 60, minutes: 60,
  h: 3600, hr: 3600, hrs: 3600, hour: 3600, hours: 3600,
  d: 86_400, day: 86_400, days: 86_400,
  w: 604_800, week: 604_800, weeks: 604_800,
  y: 31_557_600, year: 31_557_600, years: 31_557_600,
}

const PATTERN = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i

/** A duration in seconds (a number) or as text (`15m`, `1h`, `7d`). */
export type Duration = number | string

/**
 * Parses a duration into whole seconds. Returns `undefined` for anything that is not a
 * non-negative finite duration, so callers can report the problem in their own words.
 */
export function parseDuration(value: Duration): number | undefined {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? Math.floor(value) : undefined
  }
  if (typeof value !== 'string') return undefined
  const match = PATTERN.exec(value.trim())
  if (match === null) return undefined
  const amount = Number(match[1])
  const unit = (match[2] ?? '').toLowerCase()
  const factor = unit === '' ? 1 : UNITS[unit]
  if (factor === undefined || !Number.isFinite(amount)) return undefined
  return Math.floor(amount * factor)
}

/** Like {@link parseDuration}, but throws a `TypeError` naming the option on bad input. */
export function durationOption(name: string, value: Duration): number {
  const seconds = parseDuration(value)
  if (seconds === undefined) {
    throw new TypeError(`${name} must be a number of seconds or a duration such as "15m", "1h" or "7d"`)
  }
  return seconds
}
