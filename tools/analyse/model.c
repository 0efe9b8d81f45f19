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
	if (th->info->py_name[0])
		return th->info->py_name; /* threading.Thread.name, whole */
	if (th->info->name[0])
		return th->info->name;
	return th->is_main ? "main" : NULL;
}

const char *model_thread_label(const struct model *m, int thread, char *buf, size_t size)
{
	const struct trace_thread *info = m->threads[thread].info;
	const char *name = model_thread_name(m, thread);
	/* a native name the program gave that is not CPython's copy of the
	 * Python one (3.14 passes its first 15 bytes): both */
	bool native_too = info->py_name[0] && info->name[0] &&
	                  strncmp(info->py_name, info->name, strlen(info->name)) != 0;
	if (name && native_too)
		snprintf(buf, size, "%s [%s] (%d)", name, info->name, info->tid);
	else if (name)
		snprintf(buf, size, "%s (%d)", name, info->tid);
	else
		snprintf(buf, size, "%d", info->tid);
	return buf;
}

unsigned model_gils_seen(const struct model *m)
{
	unsigned seen = 0;
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++)
		seen += m->gils[gi].seen;
	return seen;
}

unsigned model_thread_group(const struct model *m, int thread)
{
	if (model_gils_seen(m) < 2)
		return 0;
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++)
		if (m->threads[thread].gils[gi / 64] >> (gi % 64) & 1)
			return gi;
	return REPLAY_MAX_GILS;
}

const char *model_group_label(const struct model *m, unsigned group, char *buf, size_t size)
{
	if (group >= REPLAY_MAX_GILS)
		snprintf(buf, size, "no GIL taken");
	else
		snprintf(buf, size, "GIL %u, %s", group,
		         m->gils[group].in_runtime ? "the main interpreter's" : "a subinterpreter's own");
	return buf;
}

int model_thread_order(const void *a, const void *b, void *model)
{
	const struct model *m = model;
	int i = *(const int *)a, k = *(const int *)b;
	const struct model_thread *x = &m->threads[i], *y = &m->threads[k];
	unsigned gx = model_thread_group(m, i), gy = model_thread_group(m, k);
	if (gx != gy)
		return gx < gy ? -1 : 1;
	if (x->is_main != y->is_main)
		return x->is_main ? -1 : 1;
	if (x->first_ns != y->first_ns)
		return x->first_ns < y->first_ns ? -1 : 1;
	return x->info->serial < y->info->serial ? -1 : x->info->serial > y->info->serial;
}

const char *model_lane_label(const struct model *m, int thread, char *buf, size_t size)
{
	char label[64], gils[64] = "";
	size_t len = 0;
	model_thread_label(m, thread, label, sizeof label);
	if (model_gils_seen(m) < 2) {
		snprintf(buf, size, "%s", label);
		return buf;
	}
	/* first, so that a narrow column cuts the name, not the GILs */
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS && len < sizeof gils; gi++)
		if (m->threads[thread].gils[gi / 64] >> (gi % 64) & 1)
			len += (size_t)snprintf(gils + len, sizeof gils - len, "%s%u", len ? "," : "", gi);
	snprintf(buf, size, "GIL %s: %s", gils[0] ? gils : "-", label);
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

/* m->epochs grown to n entries, the new ones empty: 0, or -1 when out of
 * memory. */
static int grow_epochs(struct model *m, size_t n)
{
	if (n <= m->epoch_count)
		return 0;
	struct model_epoch *grown = realloc(m->epochs, n * sizeof *grown);
	if (!grown)
		return -1;
	memset(grown + m->epoch_count, 0, (n - m->epoch_count) * sizeof *grown);
	m->epochs = grown;
	m->epoch_count = n;
	return 0;
}

static int append_thread(int **list, size_t *count, int thread)
{
	if (!(*count & (*count + 1))) { /* grow at powers of two */
		int *grown = realloc(*list, (2 * *count + 1) * sizeof *grown);
		if (!grown)
			return -1;
		*list = grown;
	}
	(*list)[(*count)++] = thread;
	return 0;
}

/* Thread held (or waited for) the GIL at ns: listed in the latest epoch
 * begun, once, unless that is the thread finalizing. */
static void note_after_finalization(struct model *m, const struct replay *r, int thread, uint64_t ns, bool held)
{
	const struct replay_epoch *ep = replay_last_epoch(r);
	if (!ep || ns < ep->start_ns || thread == ep->finalizing_thread)
		return;
	struct model_thread *th = &m->threads[thread];
	size_t *listed = held ? &th->held_in_epoch : &th->waited_in_epoch;
	if (*listed == r->epoch_count)
		return;
	if (grow_epochs(m, r->epoch_count) != 0) {
		m->oom = true;
		return;
	}
	struct model_epoch *me = &m->epochs[r->epoch_count - 1];
	int rc = held ? append_thread(&me->held, &me->held_count, thread)
	               : append_thread(&me->waited, &me->waited_count, thread);
	if (rc != 0)
		m->oom = true;
	*listed = r->epoch_count;
}

/* A test began (the program's giltrace_test_mark) or the last one ended. */
static void on_test_mark(struct model *m, int thread, const struct trace_event *e)
{
	if (!e->arg) {
		if (m->test_count && m->tests[m->test_count - 1].end_ns == UINT64_MAX)
			m->tests[m->test_count - 1].end_ns = e->ns;
		return;
	}
	if (!(m->test_count & (m->test_count + 1))) { /* grow at powers of two */
		struct model_test *grown = realloc(m->tests, (2 * m->test_count + 1) * sizeof *grown);
		if (!grown) {
			m->oom = true;
			return;
		}
		m->tests = grown;
	}
	if (m->test_count && m->tests[m->test_count - 1].end_ns == UINT64_MAX)
		m->tests[m->test_count - 1].end_ns = e->ns; /* its end was lost */
	m->tests[m->test_count++] =
	        (struct model_test){ trace_label_text(m->trace, e->payload[0]), e->payload[0], thread, e->ns, UINT64_MAX };
}

const struct model_test *model_test_at(const struct model *m, uint64_t ns, enum model_test_when *when)
{
	*when = MODEL_TEST_NONE;
	if (!m->test_count)
		return NULL;
	if (ns < m->tests[0].begin_ns) {
		*when = MODEL_TEST_BEFORE_FIRST;
		return &m->tests[0];
	}
	for (size_t i = m->test_count; i-- > 0;) {
		const struct model_test *t = &m->tests[i];
		if (ns < t->begin_ns)
			continue;
		*when = ns < t->end_ns ? MODEL_TEST_DURING : i + 1 == m->test_count ? MODEL_TEST_AFTER_LAST
		                                                                    : MODEL_TEST_BETWEEN;
		return t;
	}
	return NULL;
}

static void on_event(void *ctx, const struct replay *r, const struct trace_event *e)
{
	struct model *m = ctx;
	int thread = (int)e->thread;
	struct model_thread *th = &m->threads[thread];
	switch (e->type) {
	case GTR_EV_TEST_MARK:
		on_test_mark(m, thread, e);
		break;
	case GTR_EV_GIL_TAKE_BEGIN:
		note_after_finalization(m, r, thread, e->ns, false);
		break;
	case GTR_EV_GIL_WAIT_BEGIN:
		if (th->drop_pending)
			th->drop_requests++;
		th->drop_pending = false;
		note_after_finalization(m, r, thread, e->ns, false);
		break;
	case GTR_EV_GIL_DROP_REQUEST:
		/* counted once the thread goes on waiting or acquires: a
		 * must-exit check may leave take_gil before the request */
		th->drop_pending = true;
		break;
	case GTR_EV_GIL_HELD_AT_FORK:
		note_after_finalization(m, r, thread, e->ns, true);
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

static void on_blocked(void *ctx, const struct replay *r, int thread, uint64_t start, uint64_t end)
{
	struct model *m = ctx;
	(void)r;
	m->threads[thread].blocked_ns += end - start;
	m->threads[thread].blocks++;
	m->blocks++;
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
	note_after_finalization(m, r, thread, e->ns, true);
	m->gils[e->arg].acquisitions++;
	th->gils[e->arg / 64] |= UINT64_C(1) << (e->arg % 64);
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

static int compare_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* 0, or -1 when out of memory. */
static int finish(struct model *m, const struct replay *r)
{
	if (grow_epochs(m, r->epoch_count) != 0)
		return -1;
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
		g->enabled_seen = r->gils[gi].enabled_seen;
		g->enabled_at_end = r->gils[gi].enabled;
		g->enabled_times = r->gils[gi].enabled_times;
		g->enabled_for_good_ns = r->gils[gi].enabled_for_good_ns;
		g->enabled_for_good_by = r->gils[gi].for_good_by;
		g->enabled_for_good_module = r->gils[gi].for_good_module;
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
		m->finalization.finalizing_thread = r->finalize_call.seen ? r->finalize_call.caller : -1;
		m->finalization.enter_seen = r->finalize_call.seen;
		m->finalization.enter_ns = r->finalize_call.call_ns;
		m->finalization.exit_seen = r->finalize_call.returned;
		m->finalization.exit_ns = r->finalize_call.return_ns;
	}
	for (size_t k = 0; k < m->epoch_count; k++) {
		struct model_epoch *me = &m->epochs[k];
		me->epoch = r->epochs[k];
		for (size_t i = 0; i < m->thread_count; i++) {
			const struct model_thread *th = &m->threads[i];
			if (th->first_ns <= me->epoch.start_ns &&
			    (th->exit == THREAD_END_NONE || th->exit_ns >= me->epoch.start_ns) &&
			    append_thread(&me->alive, &me->alive_count, (int)i) != 0)
				return -1;
		}
		/* listed as they came: in thread order, as alive is */
		if (me->held_count > 1)
			qsort(me->held, me->held_count, sizeof *me->held, compare_int);
		if (me->waited_count > 1)
			qsort(me->waited, me->waited_count, sizeof *me->waited, compare_int);
	}
	if (m->handoff_count) {
		uint64_t p[4];
		latencies_percentiles(&m->handoff_latencies, (const unsigned[]){ 50, 90, 99, 100 }, p, 4);
		m->latency_p50 = p[0];
		m->latency_p90 = p[1];
		m->latency_p99 = p[2];
		m->latency_max = p[3];
	}
	return 0;
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
		          REPLAY_EVENT(GTR_EV_GIL_FORCED_SWITCH_BEGIN) | REPLAY_EVENT(GTR_EV_THREAD_START) |
		          REPLAY_EVENT(GTR_EV_TEST_MARK),
		/* a take's beginning counts only after finalization began */
		.events_after_finalization = REPLAY_EVENT(GTR_EV_GIL_TAKE_BEGIN),
		.hold = on_hold,
		.wait = on_wait,
		.blocked = on_blocked,
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
	return finish(m, r);
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
	free(m->tests);
	latencies_free(&m->handoff_latencies);
	replay_checkpoints_free(&m->checkpoints);
	free(m->pairs);
	free(m->pair_index);
	for (size_t k = 0; k < m->epoch_count; k++) {
		free(m->epochs[k].alive);
		free(m->epochs[k].held);
		free(m->epochs[k].waited);
	}
	free(m->epochs);
	lines_free(m->errors, m->error_count);
	memset(m, 0, sizeof *m);
}
