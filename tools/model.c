/*
 * model.c: replaying a trace through the GIL state machine.  See model.h.
 */
#include "model.h"

#include "lines.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS 32

/* The names of the exits a trace records are the reader's. */
const char *model_exit_name(enum model_exit e)
{
	switch (e) {
	case MODEL_EXIT_NONE:
		return NULL;
	case MODEL_EXIT_RETURN:
		return trace_exit_how_name(GTR_EXIT_RETURN);
	case MODEL_EXIT_PTHREAD_EXIT:
		return trace_exit_how_name(GTR_EXIT_PTHREAD_EXIT);
	case MODEL_EXIT_PROCESS:
		return trace_exit_how_name(GTR_EXIT_PROCESS);
	case MODEL_EXIT_PAUSED:
		return "paused";
	}
	return NULL;
}

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
	if (thread < 0) {
		snprintf(buf, size, "an unknown thread");
		return buf;
	}
	const char *name = model_thread_name(m, thread);
	if (name)
		snprintf(buf, size, "thread %d (%s)", m->threads[thread].info->tid, name);
	else
		snprintf(buf, size, "thread %d", m->threads[thread].info->tid);
	return buf;
}

static int tid_of(const struct model *m, int thread)
{
	return thread >= 0 ? m->threads[thread].info->tid : -1;
}

static int count_pair(struct model *m, int from, int to)
{
	for (size_t i = 0; i < m->pair_count; i++)
		if (m->pairs[i].from == from && m->pairs[i].to == to) {
			m->pairs[i].count++;
			return 0;
		}
	struct model_handoff_pair *grown = realloc(m->pairs, (m->pair_count + 1) * sizeof *grown);
	if (!grown)
		return -1;
	m->pairs = grown;
	m->pairs[m->pair_count++] = (struct model_handoff_pair){ from, to, 1 };
	return 0;
}

static void end_hold(struct model *m, int thread, uint64_t ns)
{
	struct model_thread *th = &m->threads[thread];
	struct model_gil *g = &m->gils[th->holding];
	th->hold_ns += ns - th->hold_since;
	if (g->holder == thread) {
		g->held_ns += ns - g->hold_since;
		g->holder = -1;
		g->last_hold_end = ns;
	}
	th->holding = -1;
}

static void end_take(struct model_thread *th, uint64_t ns)
{
	if (th->taking)
		th->wait_ns += ns - th->take_since;
	th->taking = false;
	th->attempt_waited = false;
}

/* A thread starts holding GIL `gi` at ns (ACQUIRE or HELD_AT_FORK). */
static int begin_hold(struct model *m, int thread, unsigned gi, uint64_t ns, uint64_t tstate, bool acquired)
{
	struct model_thread *th = &m->threads[thread];
	struct model_gil *g = &m->gils[gi];
	if (th->holding >= 0)
		end_hold(m, thread, ns); /* the trace lost its release (ring mode) */
	if (g->holder >= 0 && g->holder != thread) {
		model_error(m,
		            "GIL %u acquired by thread %d at %llu ns while thread %d held it (since %llu ns)",
		            gi, tid_of(m, thread), (unsigned long long)ns, tid_of(m, g->holder),
		            (unsigned long long)g->hold_since);
		end_hold(m, g->holder, ns);
	}
	if (g->holder < 0)
		g->idle_ns += ns - g->last_hold_end;
	g->holder = thread;
	g->hold_since = ns;
	th->holding = (int)gi;
	th->hold_since = ns;
	th->last_tstate = tstate;
	if (!acquired)
		return 0;
	g->acquisitions++;
	th->acquisitions++;
	m->acquisitions++;
	if (th->attempt_waited) {
		th->contended_acquisitions++;
		m->contended_acquisitions++;
	}
	if (th->drop_pending)
		th->drop_requests++;
	th->drop_pending = false;
	end_take(th, ns);
	if (g->last_releaser >= 0 && g->last_releaser != thread) {
		uint64_t *lat = m->handoff_latencies;
		if (!(m->handoff_count & (m->handoff_count + 1))) { /* grow at powers of two */
			lat = realloc(lat, (2 * m->handoff_count + 1) * sizeof *lat);
			if (!lat)
				return -1;
			m->handoff_latencies = lat;
		}
		lat[m->handoff_count++] = ns - g->last_release_ns;
		if (count_pair(m, g->last_releaser, thread) != 0)
			return -1;
	}
	g->last_releaser = -1;
	return 0;
}

/* A GIL event's arg is its index (< MODEL_MAX_GILS by its 8-bit width). */
static void mark_gil_seen(struct model *m, const struct trace_event *e)
{
	m->gils[e->arg].seen = true;
}

static void on_finalizing(struct model *m, const struct trace_event *e)
{
	if (!e->arg || m->finalization.seen)
		return;
	m->finalization.seen = true;
	m->finalization.start_ns = e->ns;
	int by_tstate = -1, holder = -1;
	for (size_t i = 0; i < m->thread_count; i++) {
		if (e->payload[0] && m->threads[i].last_tstate == e->payload[0])
			by_tstate = (int)i;
		if (m->threads[i].holding >= 0)
			holder = (int)i;
	}
	if (by_tstate >= 0)
		m->finalization.finalizing_thread = by_tstate;
	else if (m->finalization.finalizing_thread < 0)
		m->finalization.finalizing_thread = holder;
}

static int replay(struct model *m)
{
	const struct trace *t = m->trace;
	for (size_t i = 0; i < t->event_count; i++) {
		const struct trace_event *e = &t->events[i];
		int thread = (int)e->thread;
		struct model_thread *th = &m->threads[thread];
		bool after_fin = m->finalization.seen && e->ns >= m->finalization.start_ns &&
		                 thread != m->finalization.finalizing_thread;
		switch (e->type) {
		case GTR_EV_GIL_TAKE_BEGIN:
			mark_gil_seen(m, e);
			if (!th->taking) {
				th->taking = true;
				th->take_since = e->ns;
			}
			if (after_fin)
				th->waited_after_finalization = true;
			break;
		case GTR_EV_GIL_WAIT_BEGIN:
			if (th->drop_pending)
				th->drop_requests++;
			th->drop_pending = false;
			th->attempt_waited = true;
			if (!th->taking) { /* take begin lost (ring mode) */
				th->taking = true;
				th->take_since = e->ns;
			}
			if (after_fin)
				th->waited_after_finalization = true;
			break;
		case GTR_EV_GIL_DROP_REQUEST:
			/* counted once the thread goes on waiting or acquires: a
			 * must-exit check may leave take_gil before the request */
			th->drop_pending = true;
			break;
		case GTR_EV_GIL_WAIT_SIGNALED:
		case GTR_EV_GIL_WAIT_TIMEOUT:
			break;
		case GTR_EV_GIL_ACQUIRE:
		case GTR_EV_GIL_HELD_AT_FORK:
			mark_gil_seen(m, e);
			if (begin_hold(m, thread, e->arg, e->ns, e->payload[0], e->type == GTR_EV_GIL_ACQUIRE) != 0)
				return -1;
			if (after_fin)
				th->held_after_finalization = true;
			break;
		case GTR_EV_GIL_RELEASE:
			mark_gil_seen(m, e);
			if (th->holding == e->arg) {
				end_hold(m, thread, e->ns);
				m->gils[e->arg].last_releaser = thread;
				m->gils[e->arg].last_release_ns = e->ns;
			} else if (!th->info->events_lost) {
				model_error(m, "thread %d released GIL %u at %llu ns without holding it",
				            th->info->tid, e->arg, (unsigned long long)e->ns);
			}
			break;
		case GTR_EV_GIL_TAKE_ABANDON:
			th->drop_pending = false;
			th->takes_abandoned++;
			end_take(th, e->ns);
			break;
		case GTR_EV_GIL_FORCED_SWITCH_BEGIN:
			th->forced_switches++;
			break;
		case GTR_EV_GIL_REINIT: {
			mark_gil_seen(m, e);
			struct model_gil *g = &m->gils[e->arg];
			if (g->holder >= 0)
				end_hold(m, g->holder, e->ns);
			g->last_releaser = -1;
			break;
		}
		case GTR_EV_THREAD_START:
			th->has_start = true;
			th->parent_tid = (int32_t)e->payload[0];
			break;
		case GTR_EV_THREAD_EXIT:
			th->exit = (e->arg & 0x7f) == GTR_EXIT_RETURN         ? MODEL_EXIT_RETURN
			           : (e->arg & 0x7f) == GTR_EXIT_PTHREAD_EXIT ? MODEL_EXIT_PTHREAD_EXIT
			                                                      : MODEL_EXIT_PROCESS;
			th->exit_held_gil = e->arg & GTR_EXIT_HELD_GIL;
			th->exit_ns = e->ns;
			break;
		case GTR_EV_THREAD_PAUSE:
			th->exit = MODEL_EXIT_PAUSED;
			th->exit_held_gil = e->arg & GTR_EXIT_HELD_GIL;
			th->exit_ns = e->ns;
			break;
		case GTR_EV_FINALIZING:
			on_finalizing(m, e);
			break;
		case GTR_EV_CAPI_CALL:
			if (e->arg == GTR_CAPI_Py_FinalizeEx && !m->finalization.enter_seen) {
				m->finalization.enter_seen = true;
				m->finalization.enter_ns = e->ns;
				if (m->finalization.finalizing_thread < 0)
					m->finalization.finalizing_thread = thread;
			}
			break;
		case GTR_EV_CAPI_RETURN:
			if (e->arg == GTR_CAPI_Py_FinalizeEx && m->finalization.enter_seen && !m->finalization.exit_seen) {
				m->finalization.exit_seen = true;
				m->finalization.exit_ns = e->ns;
			}
			break;
		default:
			break;
		}
	}
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

/* Nearest-rank percentile pct of v[0, n); v[0, rank) must hold no value
 * larger than any of v[rank, n) already for the ranks selected before. */
static uint64_t percentile(uint64_t *v, size_t n, size_t from, unsigned pct, size_t *rank_out)
{
	size_t rank = (n * pct + 99) / 100;
	size_t k = rank ? rank - 1 : 0;
	select_kth(v, from, n, k);
	*rank_out = k;
	return v[k];
}

static void finish(struct model *m)
{
	uint64_t end = m->wall_ns;
	for (size_t i = 0; i < m->thread_count; i++) {
		struct model_thread *th = &m->threads[i];
		if (th->holding >= 0)
			end_hold(m, (int)i, end);
		end_take(th, end);
		if (th->hold_ns > m->wall_ns)
			model_error(m, "thread %d held the GIL %llu ns, longer than the run (%llu ns)",
			            th->info->tid, (unsigned long long)th->hold_ns, (unsigned long long)m->wall_ns);
	}
	for (unsigned gi = 0; gi < MODEL_MAX_GILS; gi++) {
		struct model_gil *g = &m->gils[gi];
		if (!g->seen)
			continue;
		g->idle_ns += end - g->last_hold_end;
		if (g->held_ns + g->idle_ns != m->wall_ns)
			model_error(m, "GIL %u: held %llu ns + idle %llu ns != wall %llu ns", gi,
			            (unsigned long long)g->held_ns, (unsigned long long)g->idle_ns,
			            (unsigned long long)m->wall_ns);
	}
	if (m->finalization.seen) {
		uint64_t start = m->finalization.start_ns;
		for (size_t i = 0; i < m->thread_count; i++) {
			struct model_thread *th = &m->threads[i];
			th->alive_at_finalization = th->first_ns <= start && (th->exit == MODEL_EXIT_NONE || th->exit_ns >= start);
		}
	}
	if (m->handoff_count) {
		uint64_t *v = m->handoff_latencies;
		size_t n = m->handoff_count, k = 0;
		/* each selection leaves only larger values above its rank, so the
		 * next one searches from there */
		m->latency_p50 = percentile(v, n, 0, 50, &k);
		m->latency_p90 = percentile(v, n, k, 90, &k);
		m->latency_p99 = percentile(v, n, k, 99, &k);
		m->latency_max = percentile(v, n, k, 100, &k);
	}
}

int model_build(struct model *m, const struct trace *t)
{
	memset(m, 0, sizeof *m);
	m->trace = t;
	m->wall_ns = t->end_ns;
	m->finalization.finalizing_thread = -1;
	m->thread_count = t->thread_count;
	m->threads = calloc(t->thread_count ? t->thread_count : 1, sizeof *m->threads);
	if (!m->threads)
		return -1;
	for (size_t i = 0; i < t->thread_count; i++) {
		struct model_thread *th = &m->threads[i];
		th->info = &t->threads[i];
		th->is_main = t->threads[i].tid == t->header.pid;
		th->holding = -1;
		th->first_ns = UINT64_MAX;
	}
	for (size_t i = 0; i < t->event_count; i++) {
		struct model_thread *th = &m->threads[t->events[i].thread];
		if (th->first_ns == UINT64_MAX)
			th->first_ns = t->events[i].ns;
		th->last_ns = t->events[i].ns;
	}
	for (unsigned gi = 0; gi < MODEL_MAX_GILS; gi++) {
		m->gils[gi].holder = -1;
		m->gils[gi].last_releaser = -1;
	}
	for (size_t i = 0; i < t->gil_count; i++) {
		struct model_gil *g = &m->gils[t->gils[i].index % MODEL_MAX_GILS];
		g->seen = true;
		g->base = t->gils[i].base;
		g->in_runtime = t->gils[i].in_runtime;
	}
	if (replay(m) != 0)
		return -1;
	finish(m);
	return 0;
}

void model_free(struct model *m)
{
	free(m->threads);
	free(m->handoff_latencies);
	free(m->pairs);
	lines_free(m->errors, m->error_count);
	memset(m, 0, sizeof *m);
}
