/*
 * trace-private.h: what the reader's files share (trace.c opens a trace,
 * trace-walk.c decodes and merges its events, trace-loss.c keeps its
 * losses, py-stack.c its Python stacks).  Not for the rest of tools/.
 */
#ifndef GILTRACE_TRACE_PRIVATE_H
#define GILTRACE_TRACE_PRIVATE_H

#include <string.h>

#include "trace.h"

/* A line for trace.notes (at most MAX_NOTES are kept). */
__attribute__((format(printf, 2, 3))) void trace_note(struct trace *t, const char *fmt, ...);

/* A raw clock value in ns since the trace's start. */
static inline uint64_t trace_clock_ns(const struct trace *t, uint64_t clock)
{
	if (clock <= t->header.start.clock)
		return 0;
	double ns = (double)(clock - t->header.start.clock) * t->ns_per_tick;
	/* a hostile clock or rate: 2^63 ns (292 years) is as far as times go,
	 * past it the conversion is undefined */
	return ns < 9223372036854775808.0 ? (uint64_t)ns : UINT64_C(1) << 63;
}

/* The events of chunk c (its `used` bytes follow). */
static inline const unsigned char *trace_chunk_events(const struct trace *t, const struct trace_chunk *c)
{
	return t->map + t->header.chunk_area_offset + c->index * t->header.chunk_size + GTR_CHUNK_HEADER_SIZE;
}

/* The index of the first of `count` records (each `stride` bytes, in
 * event order, starting with a size_t event index) whose event is not
 * before `event`: the stacks' lookup. */
static inline size_t trace_first_at_event(const void *records, size_t count, size_t stride, size_t event)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, at;
		memcpy(&at, (const char *)records + mid * stride, sizeof at);
		if (at < event)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* py-stack.c: keep the Python stack of event `event` (a PY_STACK's
 * payload words); -1 out of memory.  Frees them all at trace_close. */
int trace_keep_py_stack(struct trace *t, size_t event, const uint64_t *words, uint32_t count);
void trace_py_stacks_free(struct trace *t);

#endif
