/*
 * latency.h: a distribution of durations (handoff latencies) and its
 * nearest-rank percentiles, in memory that does not grow with the trace.
 *
 * Up to LATENCIES_EXACT values are kept as they are and the percentiles
 * are exact (linear-time selection).  Past that, the values go into a
 * log-linear histogram: exact below 2048 ns, and within 1/1024 of the
 * value above (each power of two cut into 1024 buckets; a percentile is
 * the middle of its bucket), in 440 KiB whatever the count.  The maximum
 * is always exact.
 */
#ifndef GILTRACE_LATENCY_H
#define GILTRACE_LATENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LATENCIES_EXACT (1u << 20)

struct latencies {
	size_t count;
	uint64_t max;
	uint64_t *exact;           /* count values, while count <= LATENCIES_EXACT */
	size_t exact_cap;
	uint64_t *buckets;         /* the histogram, once past it */
};

/* 0, or -1 when out of memory (the value is not counted). */
int latencies_add(struct latencies *l, uint64_t value);
/* Whether the percentiles are exact (else within 1/1024). */
static inline bool latencies_exact(const struct latencies *l)
{
	return !l->buckets;
}
/* The nearest-rank percentiles pcts[0..n) (1-100, ascending) into out;
 * count must be > 0.  Reorders the exact values. */
void latencies_percentiles(struct latencies *l, const unsigned *pcts, uint64_t *out, size_t n);
void latencies_free(struct latencies *l);

#endif
