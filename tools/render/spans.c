/*
 * spans.c: lanes of intervals and marks, an adapter over the replay
 * (replay.c), which owns the lanes' states, the handoffs and the
 * finalization epochs.  See spans.h.
 */
#include "spans.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void on_interval(void *ctx, const struct replay *r, int thread, enum lane_state state, uint64_t start,
                        uint64_t end)
{
	const struct span_visitor *v = ctx;
	(void)r;
	v->span(v->ctx, thread, state, start, end);
}

static void on_handoff(void *ctx, const struct replay *r, unsigned gil, int from, uint64_t released_ns, int to,
                       uint64_t acquired_ns)
{
	const struct span_visitor *v = ctx;
	(void)r;
	v->handoff(v->ctx, gil, from, released_ns, to, acquired_ns);
}

/* ---- marks ------------------------------------------------------------------ */

static const char *const mark_names[] = {
	[MARK_FINALIZE] = "finalize",
	[MARK_TSTATE_FREE] = "tstate-free",
	[MARK_THREAD_EXIT] = "thread-exit",
	[MARK_THREAD_PARK] = "thread-park",
	[MARK_FINDING] = "finding",
};

const char *mark_kind_name(enum mark_kind k)
{
	return mark_names[k];
}

static int by_time(const void *a, const void *b)
{
	const struct mark *x = a, *y = b;
	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return (x->kind > y->kind) - (x->kind < y->kind);
}

struct mark_list {
	struct mark *items;
	size_t count, cap;
	bool oom;
};

static void add_mark(struct mark_list *l, struct mark k)
{
	if (l->count == l->cap) {
		struct mark *grown = realloc(l->items, 2 * l->cap * sizeof *grown);
		if (!grown) {
			l->oom = true;
			return;
		}
		l->items = grown;
		l->cap *= 2;
	}
	l->items[l->count++] = k;
}

static void mark_epoch(void *ctx, const struct replay *r, size_t epoch)
{
	const struct replay_epoch *ep = &r->epochs[epoch];
	add_mark(ctx, (struct mark){ .kind = MARK_FINALIZE, .thread = ep->noticed_by, .ns = ep->start_ns, .finding = -1 });
}

/* A thread-state free (the only event type asked for). */
static void mark_free(void *ctx, const struct replay *r, const struct trace_event *e)
{
	(void)r;
	add_mark(ctx, (struct mark){ .kind = MARK_TSTATE_FREE, .thread = (int)e->thread, .ns = e->ns, .finding = -1,
	                             .tstate = e->payload[0] });
}

/* An exit or park; not the process exit: that thread keeps its lane to
 * the end of the trace (replay.h), no mark inside it. */
static void mark_thread_end(void *ctx, const struct replay *r, int thread, const struct trace_event *e)
{
	enum mark_kind kind = e->type == GTR_EV_THREAD_PARK ? MARK_THREAD_PARK : MARK_THREAD_EXIT;
	(void)r;
	add_mark(ctx, (struct mark){ .kind = kind, .thread = thread, .ns = e->ns, .finding = -1, .end_arg = e->arg });
}

int spans_walk_window(const struct model *m, const struct span_visitor *v, const struct findings *findings,
                      uint64_t since_ns, struct mark **out, size_t *count)
{
	struct mark_list l = { NULL, 0, 16, false };
	if (out && !(l.items = malloc(l.cap * sizeof *l.items)))
		return -1;
	const struct replay_visitor spans = {
		.ctx = (void *)v,
		.interval = v ? on_interval : NULL,
		.handoff = v && v->handoff ? on_handoff : NULL,
	};
	const struct replay_visitor marks = {
		.ctx = &l,
		.event = mark_free,
		.events = REPLAY_EVENT(GTR_EV_TSTATE_FREE),
		.thread_end = mark_thread_end,
		.epoch_begin = mark_epoch,
	};
	const struct replay_visitor *vs[2];
	size_t n = 0;
	if (v)
		vs[n++] = &spans;
	if (out)
		vs[n++] = &marks;
	/* from the analysis's last checkpoint before the window, if it kept
	 * them: what ends before since_ns may be left out */
	struct replay_options opt = { .resume = &m->checkpoints, .resume_before_ns = since_ns };
	struct replay r;
	if (replay_run_with(&r, m->trace, vs, n, &opt) != 0)
		l.oom = true;
	replay_free(&r);
	if (!out)
		return l.oom ? -1 : 0;
	for (size_t i = 0; findings && i < findings->count && !l.oom; i++)
		add_mark(&l, (struct mark){ .kind = MARK_FINDING, .thread = findings->items[i].thread,
		                            .ns = findings->items[i].ns, .finding = (int)i });
	if (l.oom) {
		free(l.items);
		return -1;
	}
	qsort(l.items, l.count, sizeof *l.items, by_time);
	*out = l.items;
	*count = l.count;
	return 0;
}

int spans_walk_marks(const struct model *m, const struct span_visitor *v, const struct findings *findings,
                     struct mark **out, size_t *count)
{
	return spans_walk_window(m, v, findings, 0, out, count);
}

int spans_walk(const struct model *m, const struct span_visitor *v)
{
	return spans_walk_marks(m, v, NULL, NULL, NULL);
}

int marks_collect(const struct model *m, const struct findings *findings, struct mark **out, size_t *count)
{
	return spans_walk_marks(m, NULL, findings, out, count);
}
