/*
 * trace-loss.c: what a trace lost, and whether it is complete evidence.
 * See trace.h.  The walk (trace-walk.c) adds each thread's losses as it
 * finds them; this file keeps them for the model's questions
 * ("may events be missing between these two times?") and words how
 * complete the trace is, for check and report alike.
 */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grow a vector of losses to hold one more: 0, or -1. */
static int reserve(struct trace_loss **items, size_t count, size_t *cap)
{
	if (count < *cap)
		return 0;
	size_t grown_cap = *cap ? 2 * *cap : 4;
	struct trace_loss *grown = realloc(*items, grown_cap * sizeof *grown);
	if (!grown)
		return -1;
	*items = grown;
	*cap = grown_cap;
	return 0;
}

/* The first interval of u ending after ns (they are disjoint and sorted,
 * so their ends are sorted too). */
static size_t first_ending_after(const struct trace_loss_union *u, uint64_t ns)
{
	size_t lo = 0, hi = u->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (u->items[mid].to_ns <= ns)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Add (from_ns, to_ns) to a union: the intervals it overlaps become one.
 * Losses come in the order the walk finds them, nearly sorted: the
 * insertion is at or near the end. */
static int union_add(struct trace_loss_union *u, const struct trace_loss *l)
{
	size_t lo = first_ending_after(u, l->from_ns), hi = lo;
	struct trace_loss merged = *l;
	while (hi < u->count && u->items[hi].from_ns < merged.to_ns) {
		if (u->items[hi].from_ns < merged.from_ns)
			merged.from_ns = u->items[hi].from_ns;
		if (u->items[hi].to_ns > merged.to_ns)
			merged.to_ns = u->items[hi].to_ns;
		hi++;
	}
	if (hi == lo) { /* overlaps none: insert */
		if (reserve(&u->items, u->count, &u->cap) != 0)
			return -1;
		memmove(u->items + lo + 1, u->items + lo, (u->count - lo) * sizeof *u->items);
		u->count++;
	} else { /* replaces [lo, hi) */
		memmove(u->items + lo + 1, u->items + hi, (u->count - hi) * sizeof *u->items);
		u->count -= hi - lo - 1;
	}
	u->items[lo] = merged;
	return 0;
}

static bool union_overlaps(const struct trace_loss_union *u, uint64_t from_ns, uint64_t to_ns)
{
	size_t lo = first_ending_after(u, from_ns);
	return lo < u->count && u->items[lo].from_ns < to_ns;
}

int trace_add_loss(struct trace *t, struct trace_loss loss)
{
	struct trace_thread *th = &t->threads[loss.thread];
	if (reserve(&th->losses, th->loss_count, &th->loss_cap) != 0)
		return -1;
	th->losses[th->loss_count++] = loss;
	th->events_lost = true;
	t->loss_count++;
	t->chunks_lost += loss.chunks;
	if (union_add(&t->loss_all, &loss) != 0)
		return -1;
	return loss.kind == TRACE_LOSS_LEADING ? 0 : union_add(&t->loss_gaps, &loss);
}

int trace_collect_losses(struct trace *t)
{
	free(t->losses);
	t->losses = malloc((t->loss_count ? t->loss_count : 1) * sizeof *t->losses);
	if (!t->losses)
		return -1;
	size_t n = 0;
	t->threads_with_loss = 0;
	for (size_t i = 0; i < t->thread_count; i++) {
		const struct trace_thread *th = &t->threads[i];
		if (th->loss_count)
			memcpy(t->losses + n, th->losses, th->loss_count * sizeof *th->losses);
		n += th->loss_count;
		t->threads_with_loss += th->events_lost;
	}
	return 0;
}

bool trace_lost_within(const struct trace *t, uint64_t from_ns, uint64_t to_ns, bool leading_too)
{
	return union_overlaps(leading_too ? &t->loss_all : &t->loss_gaps, from_ns, to_ns);
}

bool trace_thread_lost_within(const struct trace *t, uint32_t thread, uint64_t from_ns, uint64_t to_ns)
{
	/* a thread's losses lie between its kept events, in time order: they
	 * are a union already (a hostile trace may have one per chunk) */
	const struct trace_thread *th = &t->threads[thread];
	struct trace_loss_union own = { th->losses, th->loss_count, th->loss_count };
	return union_overlaps(&own, from_ns, to_ns);
}

const char *trace_loss_kind_name(enum trace_loss_kind kind)
{
	switch (kind) {
	case TRACE_LOSS_LEADING:
		return "leading";
	case TRACE_LOSS_GAP:
		return "gap";
	case TRACE_LOSS_TRAILING:
		return "trailing";
	}
	return "unknown";
}

static bool empty(const struct trace *t)
{
	return t->walked && t->event_count == 0;
}

bool trace_incomplete(const struct trace *t)
{
	return t->cut_short || t->not_closed || t->out_of_space || empty(t);
}

size_t trace_incomplete_reasons(const struct trace *t, const char *ids[TRACE_INCOMPLETE_REASONS])
{
	size_t n = 0;
	if (t->cut_short)
		ids[n++] = "cut_short";
	if (t->not_closed)
		ids[n++] = "not_closed";
	if (t->out_of_space)
		ids[n++] = "out_of_space";
	if (empty(t))
		ids[n++] = "empty";
	return n;
}

const char *trace_incomplete_why(const struct trace *t, char *buf, size_t size)
{
	char cut[128] = "";
	if (t->cut_short && t->chunks_in_file < t->header.chunks_allocated)
		snprintf(cut, sizeof cut, "the file is cut short (%llu of its %llu chunks are in it: a partial copy?)",
		         (unsigned long long)t->chunks_in_file, (unsigned long long)t->header.chunks_allocated);
	else if (t->cut_short)
		snprintf(cut, sizeof cut, "the file is cut short (inside its metadata: a partial copy?)");
	const char *parts[] = {
		cut,
		t->not_closed ? "the process did not exit normally (crash, kill, or still running)" : "",
		t->out_of_space ? "the process could not go on recording (out of trace space, or its trace file was "
		                  "lost): later events were not recorded"
		                : "",
		empty(t) ? "the trace holds no event: nothing was recorded (an interpreter giltrace does not support?)"
		         : "",
	};
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof parts / sizeof parts[0] && len < size; i++)
		if (parts[i][0])
			len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? "; " : "", parts[i]);
	return buf;
}
