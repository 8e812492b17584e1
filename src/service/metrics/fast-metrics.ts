/**
 * Metrics on the verify path, counted in plain maps and handed to prom-client at scrape
 * time. prom-client hashes the label object on every `inc` and `observe` (labelled
 * children included), a few microseconds a request; here a request costs one map lookup.
 */
import { Counter, type Registry } from 'prom-client'

/** A counter of three labels whose series are counted in nested maps and exported as a prom-client counter. */
export class MapCounter<L extends string> {
  readonly #labelNames: readonly [L, L, L]
  readonly #totals = new Map<string, Map<string, Map<string, { count: number }>>>()

  constructor(registry: Registry, options: { name: string, help: string, labelNames: readonly [L, L, L] }) {
    this.#labelNames = options.labelNames
    const read = (): { labels: Record<L, string>, count: number }[] => this.#series()
    new Counter<L>({
      name: options.name,
      help: options.help,
      labelNames: options.labelNames,
      registers: [registry],
      collect() {
        this.reset()
        for (const { labels, count } of read()) this.inc(labels, count)
      },
    })
  }

  /** Adds one to the series of these three label values, in the order of `labelNames`. */
  inc(a: string, b: string, c: string): void {
    let byB = this.#totals.get(a)
    if (byB === undefined) this.#totals.set(a, byB = new Map())
    let byC = byB.get(b)
    if (byC === undefined) byB.set(b, byC = new Map())
    const entry = byC.get(c)
    if (entry === undefined) byC.set(c, { count: 1 })
    else entry.count++
  }

  #series(): { labels: Record<L, string>, count: number }[] {
    const [na, nb, nc] = this.#labelNames
    const out: { labels: Record<L, string>, count: number }[] = []
    for (const [a, byB] of this.#totals) {
      for (const [b, byC] of byB) {
        for (const [c, { count }] of byC) out.push({ labels: { [na]: a, [nb]: b, [nc]: c } as Record<L, string>, count })
      }
    }
    return out
  }
}

interface Series { readonly counts: Float64Array, sum: number, count: number }

/** A histogram with fixed buckets and one label, registered with prom-client as a custom metric. */
export class FastHistogram {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #buckets: readonly number[]
  readonly #label: string
  readonly #series = new Map<string, Series>()

  constructor(registry: Registry, options: { name: string, help: string, label: string, buckets: readonly number[] }) {
    this.name = options.name
    this.help = options.help
    this.#label = options.label
    this.#buckets = [...options.buckets].sort((a, b) => a - b)
    registry.registerMetric(this as never)
  }

  /** Records one value (seconds) for the series of `labelValue`. */
  observe(labelValue: string, value: number): void {
    let series = this.#series.get(labelValue)
    if (series === undefined) {
      series = { counts: new Float64Array(this.#buckets.length), sum: 0, count: 0 }
      this.#series.set(labelValue, series)
    }
    const buckets = this.#buckets
    for (let i = 0; i < buckets.length; i++) {
      if (value <= (buckets[i] as number)) {
        series.counts[i] = (series.counts[i] as number) + 1
        break
      }
    }
    series.sum += value
    series.count++
  }

  /** The metric as prom-client's registry reads it: cumulative buckets, +Inf, sum and count. */
  async get(): Promise<{ name: string, help: string, type: string, aggregator: string, values: { labels: Record<string, string | number>, value: number, metricName: string }[] }> {
    const values: { labels: Record<string, string | number>, value: number, metricName: string }[] = []
    for (const [labelValue, series] of this.#series) {
      let cumulative = 0
      this.#buckets.forEach((le, i) => {
        cumulative += series.counts[i] as number
        values.push({ labels: { le, [this.#label]: labelValue }, value: cumulative, metricName: `${this.name}_bucket` })
      })
      values.push({ labels: { le: '+Inf', [this.#label]: labelValue }, value: series.count, metricName: `${this.name}_bucket` })
      values.push({ labels: { [this.#label]: labelValue }, value: series.sum, metricName: `${this.name}_sum` })
      values.push({ labels: { [this.#label]: labelValue }, value: series.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset(): void {
    this.#series.clear()
  }
}
