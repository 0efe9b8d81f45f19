/*
 * spans.c: lanes of intervals and marks.  See spans.h.
 *
 * The replay is the model's (model.c) reduced to what a picture needs: it
 * keeps no statistics, only where each thread's current interval began.
 * Where the model found GIL events missing (model.gap_events), no handoff
 * is drawn across the gap, as the model counts none.
 */
#include "spans.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct lane_replay {
	bool alive, ended;
	enum lane_state state;
	uint64_t since;
	uint64_t last_ns;          /* its latest event */
	int holding;               /* GIL index, -1 */
	bool taking;
};

struct gil_replay {
	int holder;                /* thread, -1 */
	int last_releaser;         /* thread, -1; cleared by the next acquisition */
	uint64_t released_ns;
};

static void change(const struct span_visitor *v, struct lane_replay *l, int thread, enum lane_state to, uint64_t ns)
{
	if (l->alive && l->state != to && ns > l->since)
		v->span(v->ctx, thread, l->state, l->since, ns);
	if (l->state != to || !l->alive)
		l->since = ns;
	l->state = to;
	l->alive = true;
}

static enum lane_state settled(const struct lane_replay *l)
{
	return l->holding >= 0 ? LANE_HELD : l->taking ? LANE_WAITING : LANE_RELEASED;
}

int spans_walk(const struct model *m, const struct span_visitor *v)
{
	const struct trace *t = m->trace;
	struct lane_replay *lanes = calloc(m->thread_count ? m->thread_count : 1, sizeof *lanes);
	struct gil_replay gils[MODEL_MAX_GILS];
	if (!lanes)
		return -1;
	for (size_t i = 0; i < m->thread_count; i++)
		lanes[i].holding = -1;
	for (unsigned g = 0; g < MODEL_MAX_GILS; g++)
		gils[g] = (struct gil_replay){ -1, -1, 0 };

	size_t next_gap = 0; /* into m->gap_events, which is in event order */
	for (size_t i = 0; i < t->event_count; i++) {
		const struct trace_event *e = &t->events[i];
		int thread = (int)e->thread;
		struct lane_replay *l = &lanes[thread];
		bool after_gap = next_gap < m->gap_event_count && m->gap_events[next_gap] == i;
		next_gap += after_gap;
		if (l->ended)
			continue; /* nothing after an exit counts (a fork child's copy) */
		if (!l->alive)
			change(v, l, thread, LANE_RELEASED, e->ns);
		struct gil_replay *g = &gils[e->arg];
		switch (e->type) {
		case GTR_EV_GIL_TAKE_BEGIN:
		case GTR_EV_GIL_WAIT_BEGIN:
			if (l->holding < 0)
				l->taking = true;
			break;
		case GTR_EV_GIL_TAKE_ABANDON:
			l->taking = false;
			break;
		case GTR_EV_GIL_ACQUIRE:
		case GTR_EV_GIL_HELD_AT_FORK:
			if (g->holder >= 0 && g->holder != thread) {
				/* a lost release (ring mode): end the other hold here,
				 * or across a gap at its last event, as the model does */
				struct lane_replay *other = &lanes[g->holder];
				other->holding = -1;
				change(v, other, g->holder, settled(other),
				       after_gap && other->last_ns >= other->since ? other->last_ns : e->ns);
			}
			if (e->type == GTR_EV_GIL_ACQUIRE && v->handoff && g->last_releaser >= 0 &&
			    g->last_releaser != thread && !after_gap)
				v->handoff(v->ctx, e->arg, g->last_releaser, g->released_ns, thread, e->ns);
			g->last_releaser = -1;
			g->holder = thread;
			l->holding = e->arg;
			l->taking = false;
			break;
		case GTR_EV_GIL_RELEASE:
			if (l->holding == (int)e->arg || (g->holder < 0 && m->threads[thread].info->events_lost)) {
				/* the second: its acquisition was lost, as model.c's
				 * release_unheld() says */
				l->holding = -1;
				g->holder = -1;
				g->last_releaser = thread;
				g->released_ns = e->ns;
			}
			break;
		case GTR_EV_GIL_REINIT:
			if (g->holder >= 0) {
				struct lane_replay *other = &lanes[g->holder];
				other->holding = -1;
				change(v, other, g->holder, settled(other), e->ns);
			}
			g->holder = g->last_releaser = -1;
			break;
		case GTR_EV_THREAD_EXIT:
			if (gtr_exit_how(e->arg) == GTR_EXIT_PROCESS)
				break; /* it keeps what it holds until the process is gone */
			/* fall through */
		case GTR_EV_THREAD_PAUSE:
			if (l->holding >= 0 && gils[l->holding].holder == thread)
				gils[l->holding].holder = -1; /* the model reports it */
			if (e->ns > l->since)
				v->span(v->ctx, thread, l->state, l->since, e->ns);
			l->ended = true;
			continue;
		default:
			break;
		}
		change(v, l, thread, settled(l), e->ns);
		l->last_ns = e->ns;
	}
	uint64_t end = m->wall_ns;
	for (size_t i = 0; i < m->thread_count; i++) {
		struct lane_replay *l = &lanes[i];
		if (!l->alive || l->ended)
			continue;
		/* a hold whose end the trace lost ends at the thread's last event */
		if (l->holding >= 0 && trace_thread_lost_within(t, (uint32_t)i, l->since, end)) {
			l->holding = -1;
			change(v, l, (int)i, settled(l), l->last_ns);
		}
		if (end > l->since)
			v->span(v->ctx, (int)i, l->state, l->since, end);
	}
	free(lanes);
	return 0;
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

int marks_collect(const struct model *m, const struct findings *findings, struct mark **out, size_t *count)
{
	const struct trace *t = m->trace;
	size_t n = 0, cap = 16;
	struct mark *marks = malloc(cap * sizeof *marks);
	if (!marks)
		return -1;
	bool finalizing = false;
	size_t nfindings = findings ? findings->count : 0;
	for (size_t i = 0; i < t->event_count + nfindings; i++) {
		struct mark k = { MARK_FINDING, -1, 0, SIZE_MAX, -1 };
		if (i >= t->event_count) {
			const struct finding *f = &findings->items[i - t->event_count];
			k.thread = f->thread;
			k.ns = f->ns;
			k.finding = (int)(i - t->event_count);
		} else {
			const struct trace_event *e = &t->events[i];
			k.thread = (int)e->thread;
			k.ns = e->ns;
			k.event = i;
			if (e->type == GTR_EV_FINALIZING) {
				/* the flag is sampled by whichever thread looks: one
				 * mark per start, none for the later samples */
				bool starts = e->arg && !finalizing;
				finalizing = e->arg;
				if (!starts)
					continue;
				k.kind = MARK_FINALIZE;
			} else if (e->type == GTR_EV_TSTATE_FREE) {
				k.kind = MARK_TSTATE_FREE;
			} else if (e->type == GTR_EV_THREAD_EXIT && gtr_exit_how(e->arg) != GTR_EXIT_PROCESS) {
				/* the thread that ends the process keeps its lane to the
				 * end of the trace (spans_walk): no mark inside it */
				k.kind = MARK_THREAD_EXIT;
			} else if (e->type == GTR_EV_THREAD_PAUSE) {
				k.kind = MARK_THREAD_PARK;
			} else if (e->type == GTR_EV_CAPI_RETURN && (e->arg == GTR_CAPI_Py_Initialize ||
			                                             e->arg == GTR_CAPI_Py_InitializeEx ||
			                                             e->arg == GTR_CAPI_Py_InitializeFromConfig)) {
				finalizing = false; /* a new runtime (see detect.c) */
				continue;
			} else {
				continue;
			}
		}
		if (n == cap) {
			struct mark *grown = realloc(marks, 2 * cap * sizeof *grown);
			if (!grown) {
				free(marks);
				return -1;
			}
			marks = grown;
			cap *= 2;
		}
		marks[n++] = k;
	}
	qsort(marks, n, sizeof *marks, by_time);
	*out = marks;
	*count = n;
	return 0;
}
