/*
 * trace-loss.c: what a trace lost, and whether it is complete evidence.
 * See trace.h.  The reader (trace.c) lists each thread's losses while it
 * reads the chunks; this file indexes them for the model's questions
 * ("may events be missing between these two times?") and words how
 * complete the trace is, for check and report alike.
 */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_from(const void *a, const void *b)
{
	const struct trace_loss *x = a, *y = b;
	return (x->from_ns > y->from_ns) - (x->from_ns < y->from_ns);
}

/* The union of the losses (all, or all but LEADING ones), as disjoint
 * intervals sorted by time. */
static int build_union(const struct trace *t, bool leading_too, struct trace_loss_union *u)
{
	struct trace_loss *sorted = malloc((t->loss_count ? t->loss_count : 1) * sizeof *sorted);
	u->items = malloc((t->loss_count ? t->loss_count : 1) * sizeof *u->items);
	if (!u->items || !sorted) {
		free(sorted);
		return -1;
	}
	if (t->loss_count) {
		memcpy(sorted, t->losses, t->loss_count * sizeof *sorted);
		qsort(sorted, t->loss_count, sizeof *sorted, by_from);
	}
	u->count = 0;
	for (size_t i = 0; i < t->loss_count; i++) {
		const struct trace_loss *l = &sorted[i];
		if (l->kind == TRACE_LOSS_LEADING && !leading_too)
			continue;
		struct trace_loss *last = u->count ? &u->items[u->count - 1] : NULL;
		if (last && l->from_ns < last->to_ns) {
			if (l->to_ns > last->to_ns)
				last->to_ns = l->to_ns;
		} else {
			u->items[u->count++] = *l;
		}
	}
	free(sorted);
	return 0;
}

static bool union_overlaps(const struct trace_loss_union *u, uint64_t from_ns, uint64_t to_ns)
{
	/* the first interval ending after from_ns */
	size_t lo = 0, hi = u->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (u->items[mid].to_ns <= from_ns)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < u->count && u->items[lo].from_ns < to_ns;
}

int trace_index_losses(struct trace *t)
{
	return build_union(t, false, &t->loss_gaps) != 0 || build_union(t, true, &t->loss_all) != 0 ? -1 : 0;
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
	struct trace_loss_union own = { th->loss_count ? t->losses + th->first_loss : NULL, th->loss_count };
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

bool trace_incomplete(const struct trace *t)
{
	return t->cut_short || t->not_closed || t->out_of_space;
}

size_t trace_incomplete_reasons(const struct trace *t, const char *ids[3])
{
	size_t n = 0;
	if (t->cut_short)
		ids[n++] = "cut_short";
	if (t->not_closed)
		ids[n++] = "not_closed";
	if (t->out_of_space)
		ids[n++] = "out_of_space";
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
	};
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof parts / sizeof parts[0] && len < size; i++)
		if (parts[i][0])
			len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? "; " : "", parts[i]);
	return buf;
}
