/*
 * model.c: the statistics of a trace, a visitor of its replay.  See model.h.
 */
#include "model.h"

#include "lines.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS 32

__attribute__((format(printf, 2, 3))) static void model_error(struct model *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lines_vappend(&m->errors, &m->error_count, MAX_ERRORS, fmt, ap);
	va_end(ap);
}

const char *model_thread_name(const struct model *m, int thread)
{
	const struct model_thread *th = &m->threads[thread];
	if (th->info->name[0])
		return th->info->name;
	return th->is_main ? "main" : NULL;
}

const char *model_thread_label(const struct model *m, int thread, char *buf, size_t size)
{
	const char *name = model_thread_name(m, thread);
	if (name)
		snprintf(buf, size, "%s (%d)", name, m->threads[thread].info->tid);
	else
		snprintf(buf, size, "%d", m->threads[thread].info->tid);
	return buf;
}

const char *model_thread_phrase(const struct model *m, int thread, char *buf, size_t size)
{
	char label[64];
	if (thread < 0)
		snprintf(buf, size, "an unknown thread");
	else
		snprintf(buf, size, "thread %s", model_thread_label(m, thread, label, sizeof label));
	return buf;
}

/* Threads up to which a handoff storm finds its pair by index, not by a
 * search (the table has this squared entries). */
#define PAIR_INDEX_THREADS 256

static int count_pair(struct model *m, int from, int to)
{
	uint32_t *slot = NULL;
	if (m->thread_count <= PAIR_INDEX_THREADS) {
		if (!m->pair_index && !(m->pair_index = calloc(m->thread_count * m->thread_count, sizeof *m->pair_index)))
			return -1;
		slot = &m->pair_index[(size_t)from * m->thread_count + (size_t)to];
		if (*slot) {
			m->pairs[*slot - 1].count++;
			return 0;
		}
	} else {
		for (size_t i = 0; i < m->pair_count; i++)
			if (m->pairs[i].from == from && m->pairs[i].to == to) {
				m->pairs[i].count++;
				return 0;
			}
	}
	struct model_handoff_pair *grown = realloc(m->pairs, (m->pair_count + 1) * sizeof *grown);
	if (!grown)
		return -1;
	m->pairs = grown;
	m->pairs[m->pair_count++] = (struct model_handoff_pair){ from, to, 1 };
	if (slot)
		*slot = (uint32_t)m->pair_count;
	return 0;
}

/* ---- the visitor ------------------------------------------------------------- */

/* Whether thread's event at ns came after the first finalization began, in
 * another thread than the finalizing one. */
static bool after_finalization(const struct replay *r, int thread, uint64_t ns)
{
	return r->epoch_count && ns >= r->epochs[0].start_ns && thread != r->epochs[0].finalizing_thread;
}

static void on_event(void *ctx, const struct replay *r, const struct trace_event *e)
{
	struct model *m = ctx;
	int thread = (int)e->thread;
	struct model_thread *th = &m->threads[thread];
	switch (e->type) {
	case GTR_EV_GIL_TAKE_BEGIN:
		if (after_finalization(r, thread, e->ns))
			th->waited_after_finalization = true;
		break;
	case GTR_EV_GIL_WAIT_BEGIN:
		if (th->drop_pending)
			th->drop_requests++;
		th->drop_pending = false;
		if (after_finalization(r, thread, e->ns))
			th->waited_after_finalization = true;
		break;
	case GTR_EV_GIL_DROP_REQUEST:
		/* counted once the thread goes on waiting or acquires: a
		 * must-exit check may leave take_gil before the request */
		th->drop_pending = true;
		break;
	case GTR_EV_GIL_HELD_AT_FORK:
		if (after_finalization(r, thread, e->ns))
			th->held_after_finalization = true;
		break;
	case GTR_EV_GIL_TAKE_ABANDON:
		th->drop_pending = false;
		th->takes_abandoned++;
		break;
	case GTR_EV_GIL_FORCED_SWITCH_BEGIN:
		th->forced_switches++;
		break;
	case GTR_EV_THREAD_START:
		th->has_start = true;
		th->parent_tid = (int32_t)e->payload[0];
		break;
	default:
		break;
	}
}

static void on_hold(void *ctx, const struct replay *r, int thread, unsigned gil, uint64_t start, uint64_t end)
{
	struct model *m = ctx;
	(void)r;
	m->threads[thread].hold_ns += end - start;
	m->gils[gil].held_ns += end - start;
}

static void on_wait(void *ctx, const struct replay *r, int thread, uint64_t start, uint64_t end, bool known)
{
	struct model *m = ctx;
	(void)r;
	if (known)
		m->threads[thread].wait_ns += end - start;
}

static void on_unheld(void *ctx, const struct replay *r, unsigned gil, uint64_t start, uint64_t end, bool lost)
{
	struct model *m = ctx;
	(void)r;
	if (lost)
		m->gils[gil].lost_ns += end - start;
	else
		m->gils[gil].idle_ns += end - start;
}

static void on_gap(void *ctx, const struct replay *r, unsigned gil, uint64_t missing)
{
	struct model *m = ctx;
	(void)r;
	m->gils[gil].gaps++;
	m->gils[gil].acquisitions_missing += missing;
	m->gil_gaps++;
}

static void on_acquire(void *ctx, const struct replay *r, int thread, const struct trace_event *e, bool waited)
{
	struct model *m = ctx;
	struct model_thread *th = &m->threads[thread];
	if (after_finalization(r, thread, e->ns))
		th->held_after_finalization = true;
	m->gils[e->arg].acquisitions++;
	th->acquisitions++;
	m->acquisitions++;
	if (waited) {
		th->contended_acquisitions++;
		m->contended_acquisitions++;
	}
	if (th->drop_pending)
		th->drop_requests++;
	th->drop_pending = false;
}

static void on_handoff(void *ctx, const struct replay *r, unsigned gil, int from, uint64_t released_ns, int to,
                       uint64_t acquired_ns)
{
	struct model *m = ctx;
	(void)r;
	(void)gil;
	m->handoff_count++;
	if (latencies_add(&m->handoff_latencies, acquired_ns - released_ns) != 0 || count_pair(m, from, to) != 0)
		m->oom = true;
}

static void on_handoff_lost(void *ctx, const struct replay *r, unsigned gil, int from, int to)
{
	struct model *m = ctx;
	(void)r;
	(void)gil;
	(void)from;
	(void)to;
	m->handoffs_not_counted++;
}

static void finish(struct model *m, const struct replay *r)
{
	m->wall_ns = r->end_ns;
	for (size_t i = 0; i < r->error_count; i++)
		model_error(m, "%s", r->errors[i]);
	for (size_t i = 0; i < m->thread_count; i++) {
		struct model_thread *th = &m->threads[i];
		const struct replay_thread *rt = &r->threads[i];
		th->exit = rt->exit;
		th->exit_held_gil = rt->exit_held_gil;
		th->exit_ns = rt->exit_ns;
		th->first_ns = rt->first_ns;
		th->last_ns = rt->last_event_ns;
		if (th->hold_ns > m->wall_ns)
			model_error(m, "thread %d held the GIL %llu ns, longer than the run (%llu ns)",
			            th->info->tid, (unsigned long long)th->hold_ns, (unsigned long long)m->wall_ns);
	}
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++) {
		struct model_gil *g = &m->gils[gi];
		g->seen = r->gils[gi].seen;
		if (!g->seen)
			continue;
		m->lost_ns += g->lost_ns;
		m->acquisitions_missing += g->acquisitions_missing;
		if (g->held_ns + g->idle_ns + g->lost_ns != m->wall_ns)
			model_error(m, "GIL %u: held %llu ns + idle %llu ns + lost %llu ns != wall %llu ns", gi,
			            (unsigned long long)g->held_ns, (unsigned long long)g->idle_ns,
			            (unsigned long long)g->lost_ns, (unsigned long long)m->wall_ns);
	}
	if (r->epoch_count) {
		const struct replay_epoch *ep = &r->epochs[0];
		m->finalization.seen = true;
		m->finalization.start_ns = ep->start_ns;
		m->finalization.finalizing_thread = ep->finalizing_thread;
		m->finalization.enter_seen = ep->enter_seen;
		m->finalization.enter_ns = ep->enter_ns;
		m->finalization.exit_seen = ep->exit_seen;
		m->finalization.exit_ns = ep->exit_ns;
	} else {
		m->finalization.finalizing_thread = r->finalize_call_seen ? r->finalize_caller : -1;
		m->finalization.enter_seen = r->finalize_call_seen;
		m->finalization.enter_ns = r->finalize_call_ns;
		m->finalization.exit_seen = r->finalize_return_seen;
		m->finalization.exit_ns = r->finalize_return_ns;
	}
	if (m->finalization.seen) {
		uint64_t start = m->finalization.start_ns;
		for (size_t i = 0; i < m->thread_count; i++) {
			struct model_thread *th = &m->threads[i];
			th->alive_at_finalization = th->first_ns <= start && (th->exit == THREAD_END_NONE || th->exit_ns >= start);
		}
	}
	if (m->handoff_count) {
		uint64_t p[4];
		latencies_percentiles(&m->handoff_latencies, (const unsigned[]){ 50, 90, 99, 100 }, p, 4);
		m->latency_p50 = p[0];
		m->latency_p90 = p[1];
		m->latency_p99 = p[2];
		m->latency_max = p[3];
	}
}

int model_begin(struct model *m, struct trace *t, struct replay_visitor *v)
{
	memset(m, 0, sizeof *m);
	m->trace = t;
	m->finalization.finalizing_thread = -1;
	m->thread_count = t->thread_count;
	m->threads = calloc(t->thread_count ? t->thread_count : 1, sizeof *m->threads);
	if (!m->threads)
		return -1;
	for (size_t i = 0; i < t->thread_count; i++) {
		struct model_thread *th = &m->threads[i];
		th->info = &t->threads[i];
		th->is_main = t->threads[i].tid == t->header.pid;
	}
	for (size_t i = 0; i < t->gil_count; i++) {
		struct model_gil *g = &m->gils[t->gils[i].index % REPLAY_MAX_GILS];
		g->base = t->gils[i].base;
		g->in_runtime = t->gils[i].in_runtime;
	}
	*v = (struct replay_visitor){
		.ctx = m,
		.event = on_event,
		.events = REPLAY_EVENT(GTR_EV_GIL_WAIT_BEGIN) | REPLAY_EVENT(GTR_EV_GIL_DROP_REQUEST) |
		          REPLAY_EVENT(GTR_EV_GIL_HELD_AT_FORK) | REPLAY_EVENT(GTR_EV_GIL_TAKE_ABANDON) |
		          REPLAY_EVENT(GTR_EV_GIL_FORCED_SWITCH_BEGIN) | REPLAY_EVENT(GTR_EV_THREAD_START),
		/* a take's beginning counts only after finalization began */
		.events_after_finalization = REPLAY_EVENT(GTR_EV_GIL_TAKE_BEGIN),
		.hold = on_hold,
		.wait = on_wait,
		.unheld = on_unheld,
		.gap = on_gap,
		.acquire = on_acquire,
		.handoff = on_handoff,
		.handoff_lost = on_handoff_lost,
	};
	return 0;
}

int model_end(struct model *m, const struct replay *r)
{
	free(m->pair_index);
	m->pair_index = NULL;
	if (m->oom)
		return -1;
	finish(m, r);
	return 0;
}

int model_build(struct model *m, struct trace *t)
{
	struct replay_visitor v;
	struct replay r;
	if (model_begin(m, t, &v) != 0)
		return -1;
	const struct replay_visitor *vs[] = { &v };
	int rc = replay_run(&r, t, vs, 1) == 0 ? model_end(m, &r) : -1;
	replay_free(&r);
	return rc;
}

void model_free(struct model *m)
{
	free(m->threads);
	latencies_free(&m->handoff_latencies);
	replay_checkpoints_free(&m->checkpoints);
	free(m->pairs);
	free(m->pair_index);
	lines_free(m->errors, m->error_count);
	memset(m, 0, sizeof *m);
}
