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

static void end_take(const struct model *m, struct model_thread *th, uint64_t ns)
{
	/* a wait across a gap in the thread's own events is not known */
	if (th->taking && !(th->info->events_lost && trace_lost_within(m->trace, th->take_since, ns, false)))
		th->wait_ns += ns - th->take_since;
	th->taking = false;
	th->attempt_waited = false;
}

static int note_gap(struct model *m, struct model_gil *g, size_t event)
{
	g->gaps++;
	m->gil_gaps++;
	if (!(m->gap_event_count & (m->gap_event_count + 1))) { /* grow at powers of two */
		size_t *grown = realloc(m->gap_events, (2 * m->gap_event_count + 1) * sizeof *grown);
		if (!grown)
			return -1;
		m->gap_events = grown;
	}
	m->gap_events[m->gap_event_count++] = event;
	return 0;
}

/* Whether GIL events may be missing before e (an acquisition of g), since
 * `since_ns`, the GIL's last known state.  The switch numbers of two kept
 * acquisitions say it best: more than one apart, others came between them
 * (and how many).  At most one apart, the only acquisitions they can hide
 * are by a thread state that moves no switch number: the last holder's
 * taking the GIL again, or the new holder's taking it twice; so only a
 * loss in those two threads' own events counts.  Without a switch number
 * (the first acquisition, after a fork) any loss counts. */
static bool gil_gap_before(struct model *m, struct model_gil *g, const struct trace_event *e, uint64_t since_ns)
{
	const struct trace *t = m->trace;
	bool gap;
	if (e->type == GTR_EV_GIL_ACQUIRE && g->switch_known) {
		uint64_t step = e->payload[1] - g->last_switch;
		gap = step > 1 || trace_thread_lost_within(t, e->thread, since_ns, e->ns) ||
		      (g->last_acquirer >= 0 && trace_thread_lost_within(t, (uint32_t)g->last_acquirer, since_ns, e->ns));
		if (step > 1 && step <= UINT32_MAX) /* else not a count: went back */
			g->acquisitions_missing += step - 1;
	} else {
		gap = trace_lost_within(t, since_ns, e->ns, true);
	}
	g->switch_known = e->type == GTR_EV_GIL_ACQUIRE;
	g->last_switch = e->payload[1];
	g->last_acquirer = (int)e->thread;
	return gap;
}

/* A thread starts holding GIL e->arg at e->ns (ACQUIRE or HELD_AT_FORK);
 * e is trace.events[index]. */
static int begin_hold(struct model *m, int thread, const struct trace_event *e, size_t index)
{
	struct model_thread *th = &m->threads[thread];
	unsigned gi = e->arg;
	uint64_t ns = e->ns;
	bool acquired = e->type == GTR_EV_GIL_ACQUIRE;
	struct model_gil *g = &m->gils[gi];
	bool gap = gil_gap_before(m, g, e, g->holder >= 0 ? g->hold_since : g->last_hold_end);
	if (g->holder >= 0) {
		/* its release is not in the trace: across a gap, the holder is
		 * known to hold it only up to its last event; else the trace
		 * contradicts itself */
		int holder = g->holder;
		uint64_t end = ns;
		if (gap) {
			uint64_t last = m->threads[holder].last_event_ns;
			end = last < g->hold_since ? g->hold_since : last > ns ? ns : last;
		} else if (holder != thread) {
			model_error(m, "GIL %u acquired by thread %d at %llu ns while thread %d held it (since %llu ns)",
			            gi, tid_of(m, thread), (unsigned long long)ns, tid_of(m, holder),
			            (unsigned long long)g->hold_since);
		}
		end_hold(m, holder, end);
	}
	if (th->holding >= 0)
		end_hold(m, thread, ns); /* another GIL, its release lost */
	if (gap) {
		g->lost_ns += ns - g->last_hold_end;
		if (note_gap(m, g, index) != 0)
			return -1;
	} else {
		g->idle_ns += ns - g->last_hold_end;
	}
	g->holder = thread;
	g->hold_since = ns;
	th->holding = (int)gi;
	th->hold_since = ns;
	th->last_tstate = e->payload[0];
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
	end_take(m, th, ns);
	if (g->last_releaser >= 0 && g->last_releaser != thread && gap) {
		m->handoffs_not_counted++;
	} else if (g->last_releaser >= 0 && g->last_releaser != thread) {
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

/* A release by a thread that does not hold the GIL: its acquisition was
 * lost (ring mode), so the GIL was held, by it, for an unknown part of the
 * time since it was last known free. */
static void release_unheld(struct model *m, int thread, const struct trace_event *e)
{
	struct model_thread *th = &m->threads[thread];
	struct model_gil *g = &m->gils[e->arg];
	if (!th->info->events_lost) {
		model_error(m, "thread %d released GIL %u at %llu ns without holding it", th->info->tid, e->arg,
		            (unsigned long long)e->ns);
		return;
	}
	if (g->holder >= 0)
		return; /* the holder's release is what is missing; its next acquirer settles it */
	g->lost_ns += e->ns - g->last_hold_end;
	g->last_hold_end = e->ns;
	g->last_releaser = thread;
	g->last_release_ns = e->ns;
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
			if (begin_hold(m, thread, e, i) != 0)
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
			} else {
				release_unheld(m, thread, e);
			}
			break;
		case GTR_EV_GIL_TAKE_ABANDON:
			th->drop_pending = false;
			th->takes_abandoned++;
			end_take(m, th, e->ns);
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
			g->switch_known = false;
			break;
		}
		case GTR_EV_THREAD_START:
			th->has_start = true;
			th->parent_tid = (int32_t)e->payload[0];
			break;
		case GTR_EV_THREAD_EXIT:
			th->exit = gtr_exit_how(e->arg) == GTR_EXIT_RETURN         ? MODEL_EXIT_RETURN
			           : gtr_exit_how(e->arg) == GTR_EXIT_PTHREAD_EXIT ? MODEL_EXIT_PTHREAD_EXIT
			                                                      : MODEL_EXIT_PROCESS;
			th->exit_held_gil = gtr_exit_held_gil(e->arg);
			th->exit_ns = e->ns;
			break;
		case GTR_EV_THREAD_PAUSE:
			th->exit = MODEL_EXIT_PAUSED;
			th->exit_held_gil = gtr_exit_held_gil(e->arg);
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
		th->last_event_ns = e->ns;
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
	const struct trace *t = m->trace;
	for (size_t i = 0; i < m->thread_count; i++) {
		struct model_thread *th = &m->threads[i];
		/* a hold to the end, unless the thread's later events are lost:
		 * then only to its last one */
		if (th->holding >= 0)
			end_hold(m, (int)i,
			         trace_thread_lost_within(t, (uint32_t)i, th->hold_since, end)
			                 ? (th->last_event_ns > th->hold_since ? th->last_event_ns : th->hold_since)
			                 : end);
		end_take(m, th, end);
		if (th->hold_ns > m->wall_ns)
			model_error(m, "thread %d held the GIL %llu ns, longer than the run (%llu ns)",
			            th->info->tid, (unsigned long long)th->hold_ns, (unsigned long long)m->wall_ns);
	}
	for (unsigned gi = 0; gi < MODEL_MAX_GILS; gi++) {
		struct model_gil *g = &m->gils[gi];
		if (!g->seen)
			continue;
		/* no acquisition follows to give a switch number: any loss counts */
		if (end > g->last_hold_end && trace_lost_within(t, g->last_hold_end, end, true))
			g->lost_ns += end - g->last_hold_end;
		else
			g->idle_ns += end - g->last_hold_end;
		m->lost_ns += g->lost_ns;
		m->acquisitions_missing += g->acquisitions_missing;
		if (g->held_ns + g->idle_ns + g->lost_ns != m->wall_ns)
			model_error(m, "GIL %u: held %llu ns + idle %llu ns + lost %llu ns != wall %llu ns", gi,
			            (unsigned long long)g->held_ns, (unsigned long long)g->idle_ns,
			            (unsigned long long)g->lost_ns, (unsigned long long)m->wall_ns);
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
		m->gils[gi].last_acquirer = -1;
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
	free(m->gap_events);
	lines_free(m->errors, m->error_count);
	memset(m, 0, sizeof *m);
}
