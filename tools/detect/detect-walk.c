/*
 * detect-walk.c: what every detector uses while it walks the replay: a new
 * finding, the thread state and stack that go with it, and the threads'
 * labels.  See detect-walk.h.
 */
#include "detect-walk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct finding *walk_add_finding(struct walk *w, enum detector kind, int thread, uint64_t ns)
{
	struct findings *f = w->out;
	struct finding *grown = realloc(f->items, (f->count + 1) * sizeof *grown);
	if (!grown) {
		w->oom = true;
		return NULL;
	}
	f->items = grown;
	struct finding *x = &f->items[f->count++];
	memset(x, 0, sizeof *x);
	x->kind = kind;
	x->thread = thread;
	x->ns = ns;
	x->freed_by = -1;
	x->other_thread = -1;
	x->stack_event = SIZE_MAX;
	x->freed_event = SIZE_MAX;
	const struct replay_epoch *last = replay_last_epoch(w->r);
	x->finalizing = finalizing_at(w, ns);
	x->fin_seen = last && ns >= last->start_ns;
	x->fin_start_ns = last ? last->start_ns : 0;
	if (detectors[kind].severity == SEVERITY_ERROR)
		f->errors++;
	else
		f->notes++;
	return x;
}

void walk_with_tstate(struct walk *w, struct finding *x, uint64_t tstate)
{
	const struct tstate_life *l = walk_freed_life(w, tstate);
	x->tstate = tstate;
	if (l) {
		x->freed = true;
		x->freed_ns = l->freed_ns;
		x->freed_by = l->freed_by;
		x->freed_event = l->freed_event;
	}
}

/* The first of two events (indices, SIZE_MAX none) that has a stack. */
size_t walk_with_stack(const struct walk *w, size_t first, size_t second)
{
	const struct trace *t = w->t;
	if (first != SIZE_MAX && trace_stack_of(t, first))
		return first;
	if (second != SIZE_MAX && trace_stack_of(t, second))
		return second;
	return SIZE_MAX;
}

/* What a watched thread did, from what started its watch. */
void walk_describe_entry(const struct thread_state *ts, char *buf, size_t size)
{
	if (ts->capi)
		snprintf(buf, size, "%s", trace_capi_name(ts->capi));
	else
		snprintf(buf, size, "take_gil");
}

/* ---- threads ------------------------------------------------------------------- */

int walk_thread_of_tid(const struct walk *w, int32_t tid, uint64_t ns)
{
	int best = -1, started_later = -1;
	for (size_t i = 0; i < w->t->thread_count; i++) {
		if (w->t->threads[i].tid != tid)
			continue;
		const struct replay_thread *rt = &w->r->threads[i];
		if (rt->first_ns > ns) /* not begun at ns (or not replayed yet) */
			started_later = started_later < 0 ? (int)i : started_later;
		else if (best < 0 || rt->first_ns >= w->r->threads[best].first_ns)
			best = (int)i;
	}
	return best >= 0 ? best : started_later;
}

void walk_thread_label(const struct walk *w, int thread, char *buf, size_t size)
{
	const struct trace_thread *th = &w->t->threads[thread];
	if (th->name[0])
		snprintf(buf, size, "thread %d (%s)", th->tid, th->name);
	else if (th->tid == w->t->header.pid)
		snprintf(buf, size, "thread %d (main)", th->tid);
	else
		snprintf(buf, size, "thread %d", th->tid);
}

