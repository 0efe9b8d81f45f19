/*
 * latency.c: durations and their percentiles.  See latency.h.
 */
#include "latency.h"

#include <stdlib.h>
#include <string.h>

#define SUB_BITS 10                            /* 1024 buckets per power of two */
#define LINEAR (UINT64_C(2) << SUB_BITS)       /* values below are their own bucket */
#define BUCKETS (LINEAR + (64 - SUB_BITS - 1) * (UINT64_C(1) << SUB_BITS))

static size_t bucket_of(uint64_t v)
{
	if (v < LINEAR)
		return (size_t)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= SUB_BITS + 1 */
	uint64_t sub = (v >> (e - SUB_BITS)) & ((UINT64_C(1) << SUB_BITS) - 1);
	return (size_t)(LINEAR + (e - SUB_BITS - 1) * (UINT64_C(1) << SUB_BITS) + sub);
}

/* The middle of bucket b. */
static uint64_t bucket_value(size_t b)
{
	if (b < LINEAR)
		return b;
	uint64_t k = b - LINEAR;
	unsigned e = (unsigned)(k >> SUB_BITS) + SUB_BITS + 1;
	uint64_t sub = k & ((UINT64_C(1) << SUB_BITS) - 1);
	uint64_t width = UINT64_C(1) << (e - SUB_BITS);
	uint64_t low = (UINT64_C(1) << e) + sub * width;
	return low + width / 2;
}

int latencies_add(struct latencies *l, uint64_t value)
{
	if (!l->buckets && l->count == LATENCIES_EXACT) {
		/* past what is worth keeping: into the histogram */
		l->buckets = calloc(BUCKETS, sizeof *l->buckets);
		if (!l->buckets)
			return -1;
		for (size_t i = 0; i < l->count; i++)
			l->buckets[bucket_of(l->exact[i])]++;
		free(l->exact);
		l->exact = NULL;
		l->exact_cap = 0;
	}
	if (l->buckets) {
		l->buckets[bucket_of(value)]++;
	} else {
		if (l->count == l->exact_cap) {
			size_t cap = l->exact_cap ? 2 * l->exact_cap : 256;
			uint64_t *grown = realloc(l->exact, cap * sizeof *grown);
			if (!grown)
				return -1;
			l->exact = grown;
			l->exact_cap = cap;
		}
		l->exact[l->count] = value;
	}
	l->count++;
	if (value > l->max)
		l->max = value;
	return 0;
}

/* Rearrange v[lo, hi) so that v[k] is the value a sort would put there,
 * with nothing larger before it and nothing smaller after it (quickselect
 * with a three-way partition around a median-of-three pivot: the "equal"
 * part is never empty, so every round shrinks the range).  Percentiles in
 * linear time, not a full sort. */
static void select_kth(uint64_t *v, size_t lo, size_t hi, size_t k)
{
	while (hi - lo > 1) {
		uint64_t a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi - 1];
		uint64_t pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
		/* [lo, lt) < pivot, [lt, i) == pivot, [gt, hi) > pivot */
		size_t lt = lo, i = lo, gt = hi;
		while (i < gt) {
			uint64_t x = v[i];
			if (x < pivot) {
				v[i++] = v[lt];
				v[lt++] = x;
			} else if (x > pivot) {
				v[i] = v[--gt];
				v[gt] = x;
			} else {
				i++;
			}
		}
		if (k < lt)
			hi = lt;
		else if (k >= gt)
			lo = gt;
		else
			return;
	}
}

static size_t rank_index(size_t n, unsigned pct)
{
	size_t rank = (n * pct + 99) / 100;
	return rank ? rank - 1 : 0;
}

void latencies_percentiles(struct latencies *l, const unsigned *pcts, uint64_t *out, size_t n)
{
	if (!l->buckets) {
		/* each selection leaves only larger values above its rank, so
		 * the next one searches from there */
		size_t from = 0;
		for (size_t i = 0; i < n; i++) {
			size_t k = rank_index(l->count, pcts[i]);
			select_kth(l->exact, from, l->count, k);
			out[i] = l->exact[k];
			from = k;
		}
		return;
	}
	size_t b = 0;
	uint64_t seen = 0; /* values in buckets below b */
	for (size_t i = 0; i < n; i++) {
		size_t k = rank_index(l->count, pcts[i]);
		while (b < BUCKETS && seen + l->buckets[b] <= k)
			seen += l->buckets[b++];
		uint64_t v = b < BUCKETS ? bucket_value(b) : l->max;
		out[i] = pcts[i] == 100 || v > l->max ? l->max : v;
	}
}

void latencies_free(struct latencies *l)
{
	free(l->exact);
	free(l->buckets);
	memset(l, 0, sizeof *l);
}
