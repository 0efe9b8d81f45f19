/*
 * replay.c: the one replay of a trace's GIL and finalization.  See
 * replay.h.
 */
#include "replay.h"
#include "replay-checkpoint.h"

#include "lines.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS 32

/* Call callback `cb` of every visitor that has one (r->has.cb: any has). */
#define EMIT(r, cb, ...)                                                        \
	do {                                                                    \
		if ((r)->has.cb)                                                \
			for (size_t v_ = 0; v_ < (r)->visitor_count; v_++)      \
				if ((r)->visitors[v_]->cb)                      \
					(r)->visitors[v_]->cb((r)->visitors[v_]->ctx, (r), ##__VA_ARGS__); \
	} while (0)

__attribute__((format(printf, 2, 3))) static void replay_error(struct replay *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lines_vappend(&r->errors, &r->error_count, MAX_ERRORS, fmt, ap);
	va_end(ap);
}

static int tid_of(const struct replay *r, int thread)
{
	return thread >= 0 ? r->trace->threads[thread].tid : -1;
}

/* ---- lanes -------------------------------------------------------------------- */

static enum lane_state settled(const struct replay_thread *th)
{
	return th->holding >= 0 ? LANE_HELD
	       : th->waiting    ? LANE_WAITING
	       : th->blocked    ? LANE_BLOCKED
	                        : LANE_RELEASED;
}

/* Thread's lane is in state `to` from ns on. */
static void lane_change(struct replay *r, int thread, enum lane_state to, uint64_t ns)
{
	struct replay_thread *th = &r->threads[thread];
	if (!r->lanes || th->ended)
		return;
	if (th->alive && th->lane != to && ns > th->lane_since)
		EMIT(r, interval, thread, th->lane, th->lane_since, ns);
	if (th->lane != to || !th->alive)
		th->lane_since = ns;
	th->lane = to;
	th->alive = true;
}

/* Thread's lane ends at ns: it exited or parked. */
static void lane_end(struct replay *r, int thread, uint64_t ns)
{
	struct replay_thread *th = &r->threads[thread];
	if (!r->lanes || th->ended)
		return;
	if (ns > th->lane_since)
		EMIT(r, interval, thread, th->lane, th->lane_since, ns);
	th->ended = true;
}

/* ---- holds and waits ---------------------------------------------------------- */

static void end_hold(struct replay *r, int thread, uint64_t ns)
{
	struct replay_thread *th = &r->threads[thread];
	unsigned gi = (unsigned)th->holding;
	struct replay_gil *g = &r->gils[gi];
	EMIT(r, hold, thread, gi, th->hold_since, ns);
	if (g->holder == thread) {
		g->holder = -1;
		g->last_hold_end = ns;
	}
	th->holding = -1;
}

static void end_wait(struct replay *r, int thread, uint64_t ns)
{
	struct replay_thread *th = &r->threads[thread];
	/* a wait across a gap in the thread's own events is not known */
	if (th->waiting)
		EMIT(r, wait, thread, th->wait_since, ns,
		     !trace_thread_lost_within(r->trace, (uint32_t)thread, th->wait_since, ns));
	th->waiting = false;
	th->attempt_waited = false;
}

static void end_block(struct replay *r, int thread, uint64_t ns)
{
	struct replay_thread *th = &r->threads[thread];
	if (th->blocked)
		EMIT(r, blocked, thread, th->blocked_since, ns);
	th->blocked = false;
}

/* Whether GIL events may be missing before e (an acquisition of g), since
 * `since_ns`, the GIL's last known state.  The switch numbers of two kept
 * acquisitions say it best: more than one apart, others came between them
 * (and how many).  At most one apart, the only acquisitions they can hide
 * are by a thread state that moves no switch number: the last holder's
 * taking the GIL again, or the new holder's taking it twice; so only a
 * loss in those two threads' own events counts.  Without a switch number
 * (the first acquisition, after a fork) any loss counts. */
static bool gil_gap_before(const struct replay *r, struct replay_gil *g, const struct trace_event *e,
                           uint64_t since_ns, uint64_t *missing)
{
	const struct trace *t = r->trace;
	bool lossy = t->loss_count != 0; /* else only switch numbers can tell */
	bool gap;
	*missing = 0;
	if (e->type == GTR_EV_GIL_ACQUIRE && g->switch_known) {
		uint64_t step = e->payload[1] - g->last_switch;
		gap = step > 1 || (lossy && trace_thread_lost_within(t, e->thread, since_ns, e->ns)) ||
		      (lossy && g->last_acquirer >= 0 &&
		       trace_thread_lost_within(t, (uint32_t)g->last_acquirer, since_ns, e->ns));
		if (step > 1 && step <= UINT32_MAX) /* else not a count: went back */
			*missing = step - 1;
	} else {
		gap = lossy && trace_lost_within(t, since_ns, e->ns, true);
	}
	g->switch_known = e->type == GTR_EV_GIL_ACQUIRE;
	g->last_switch = e->payload[1];
	g->last_acquirer = (int)e->thread;
	return gap;
}

/* A thread starts holding GIL e->arg at e->ns (ACQUIRE or HELD_AT_FORK). */
static void begin_hold(struct replay *r, int thread, const struct trace_event *e)
{
	struct replay_thread *th = &r->threads[thread];
	unsigned gi = e->arg;
	uint64_t ns = e->ns, missing;
	struct replay_gil *g = &r->gils[gi];
	bool gap = gil_gap_before(r, g, e, g->holder >= 0 ? g->hold_since : g->last_hold_end, &missing);
	if (g->holder >= 0) {
		/* its release is not in the trace: across a gap, the holder is
		 * known to hold it only up to its last event; else the trace
		 * contradicts itself */
		int holder = g->holder;
		uint64_t end = ns;
		if (gap) {
			uint64_t last = r->threads[holder].last_event_ns;
			end = last < g->hold_since ? g->hold_since : last > ns ? ns : last;
		} else if (holder != thread) {
			replay_error(r, "GIL %u acquired by thread %d at %llu ns while thread %d held it (since %llu ns)",
			             gi, tid_of(r, thread), (unsigned long long)ns, tid_of(r, holder),
			             (unsigned long long)g->hold_since);
		}
		end_hold(r, holder, end);
		if (holder != thread) /* its own again: its lane stays held */
			lane_change(r, holder, settled(&r->threads[holder]), end);
	}
	if (th->holding >= 0)
		end_hold(r, thread, ns); /* another GIL, its release lost */
	EMIT(r, unheld, gi, g->last_hold_end, ns, gap);
	if (gap)
		EMIT(r, gap, gi, missing);
	g->holder = thread;
	g->hold_since = ns;
	th->holding = (int)gi;
	th->hold_since = ns;
	th->last_tstate = e->payload[0];
	if (e->type != GTR_EV_GIL_ACQUIRE)
		return;
	EMIT(r, acquire, thread, e, th->attempt_waited);
	end_wait(r, thread, ns);
	if (g->last_releaser >= 0 && g->last_releaser != thread && gap)
		EMIT(r, handoff_lost, gi, g->last_releaser, thread);
	else if (g->last_releaser >= 0 && g->last_releaser != thread)
		EMIT(r, handoff, gi, g->last_releaser, g->last_release_ns, thread, ns);
	g->last_releaser = -1;
}

/* A release by a thread that does not hold the GIL: its acquisition was
 * lost (ring mode), so the GIL was held, by it, for an unknown part of the
 * time since it was last known free. */
static void release_unheld(struct replay *r, int thread, const struct trace_event *e)
{
	struct replay_gil *g = &r->gils[e->arg];
	if (!r->trace->threads[thread].events_lost) {
		replay_error(r, "thread %d released GIL %u at %llu ns without holding it", tid_of(r, thread), e->arg,
		             (unsigned long long)e->ns);
		return;
	}
	if (g->holder >= 0)
		return; /* the holder's release is what is missing; its next acquirer settles it */
	EMIT(r, unheld, e->arg, g->last_hold_end, e->ns, true);
	g->last_hold_end = e->ns;
	g->last_releaser = thread;
	g->last_release_ns = e->ns;
}

/* ---- finalization epochs ------------------------------------------------------- */

static void begin_epoch(struct replay *r, int thread, const struct trace_event *e)
{
	if (!(r->epoch_count & (r->epoch_count + 1))) { /* grow at powers of two */
		struct replay_epoch *grown = realloc(r->epochs, (2 * r->epoch_count + 1) * sizeof *grown);
		if (!grown) {
			r->oom = true;
			return;
		}
		r->epochs = grown;
	}
	struct replay_epoch *ep = &r->epochs[r->epoch_count++];
	memset(ep, 0, sizeof *ep);
	ep->start_ns = e->ns;
	ep->start_event = r->at;
	ep->noticed_by = thread;
	int by_tstate = -1, holder = -1;
	for (size_t i = 0; i < r->thread_count; i++) {
		if (e->payload[0] && r->threads[i].last_tstate == e->payload[0])
			by_tstate = (int)i;
		if (r->threads[i].holding >= 0)
			holder = (int)i;
	}
	ep->finalizing_thread = by_tstate >= 0 ? by_tstate : r->finalize_call.seen ? r->finalize_call.caller : holder;
	if (r->finalize_call.seen) { /* the Py_FinalizeEx call that set it */
		ep->enter_seen = true;
		ep->enter_ns = r->finalize_call.call_ns;
		ep->exit_seen = r->finalize_call.returned;
		ep->exit_ns = r->finalize_call.return_ns;
		r->finalize_call.seen = r->finalize_call.returned = false;
	}
	r->finalizing = true;
	EMIT(r, epoch_begin, r->epoch_count - 1);
}

static void end_epoch(struct replay *r, uint64_t ns)
{
	struct replay_epoch *ep = &r->epochs[r->epoch_count - 1];
	ep->ended = true;
	ep->end_ns = ns;
	r->finalizing = false;
	EMIT(r, epoch_end, r->epoch_count - 1);
}

static void on_finalize_call(struct replay *r, int thread, const struct trace_event *e)
{
	struct replay_epoch *ep = r->finalizing ? &r->epochs[r->epoch_count - 1] : NULL;
	if (ep && !ep->enter_seen) { /* its call was not seen before the flag */
		ep->enter_seen = true;
		ep->enter_ns = e->ns;
		if (ep->finalizing_thread < 0)
			ep->finalizing_thread = thread;
	} else if (!ep && !r->finalize_call.seen) {
		r->finalize_call.seen = true;
		r->finalize_call.caller = thread;
		r->finalize_call.call_ns = e->ns;
	}
}

static void on_finalize_return(struct replay *r, const struct trace_event *e)
{
	struct replay_epoch *ep = r->epoch_count ? &r->epochs[r->epoch_count - 1] : NULL;
	if (r->finalize_call.seen && !r->finalize_call.returned) {
		r->finalize_call.returned = true;
		r->finalize_call.return_ns = e->ns;
	} else if (ep && ep->enter_seen && !ep->exit_seen) {
		ep->exit_seen = true;
		ep->exit_ns = e->ns;
	}
}

/* The runtime's finalizing flag stays set after Py_FinalizeEx returns (the
 * must-exit checks still end daemon threads then); a new runtime starts
 * with these. */
static bool starts_new_runtime(unsigned fn)
{
	return fn == GTR_CAPI_Py_Initialize || fn == GTR_CAPI_Py_InitializeEx || fn == GTR_CAPI_Py_InitializeFromConfig;
}

/* ---- the walk ---------------------------------------------------------------------- */

/* A free-threaded build's GIL `enabled` count, as the shim saw it change.
 * CPython enables it transiently around every extension module's import
 * (Python/import.c: _PyEval_EnableGILTransient before the module's init,
 * _PyImport_CheckGILForModule after it), then for good if the module does
 * not declare Py_mod_gil_not_used, else back to 0.  The importing thread
 * re-attaches, so takes the GIL, right after its transient enable: the
 * shim records that count on that thread, after the thread's dlopen of
 * the module (MODULE_LOAD) when the module is not built in. */
static void gil_enabled(struct replay *r, int thread, const struct trace_event *e)
{
	struct replay_gil *g = &r->gils[e->arg];
	const struct replay_thread *t = &r->threads[thread];
	uint64_t count = e->payload[0];
	g->seen = true;
	if (count == GTR_GIL_ENABLED_FOR_GOOD && g->enabled_for_good_ns == UINT64_MAX) {
		g->enabled_for_good_ns = e->ns;
		if (g->enabled) { /* after an import's transient enable: that import */
			g->for_good_by = g->enabled_by;
			g->for_good_module = g->enabled_module;
		}
	} else if (count && count != GTR_GIL_ENABLED_FOR_GOOD && !g->enabled) {
		g->enabled_times++;
		g->enabled_by = thread;
		g->enabled_module = t->last_load && t->last_load_ns >= g->disabled_ns ? t->last_load : 0;
	} else if (!count) {
		g->disabled_ns = e->ns;
	}
	g->enabled = count;
	g->enabled_seen = true;
}

static void replay_event(struct replay *r, const struct trace_event *e)
{
	int thread = (int)e->thread;
	struct replay_thread *th = &r->threads[thread];
	if (r->lanes && !th->alive)
		lane_change(r, thread, LANE_RELEASED, e->ns);
	switch (e->type) {
	case GTR_EV_GIL_TAKE_BEGIN:
		r->gils[e->arg].seen = true;
		if (!th->waiting) {
			th->waiting = true;
			th->wait_since = e->ns;
		}
		break;
	case GTR_EV_GIL_WAIT_BEGIN:
		th->attempt_waited = true;
		if (!th->waiting) { /* take begin lost (ring mode) */
			th->waiting = true;
			th->wait_since = e->ns;
		}
		break;
	case GTR_EV_GIL_ACQUIRE:
	case GTR_EV_GIL_HELD_AT_FORK:
		r->gils[e->arg].seen = true;
		begin_hold(r, thread, e);
		break;
	case GTR_EV_GIL_RELEASE: {
		struct replay_gil *g = &r->gils[e->arg];
		g->seen = true;
		if (th->holding == e->arg) {
			end_hold(r, thread, e->ns);
			g->last_releaser = thread;
			g->last_release_ns = e->ns;
		} else {
			release_unheld(r, thread, e);
		}
		break;
	}
	case GTR_EV_GIL_TAKE_ABANDON:
		end_wait(r, thread, e->ns);
		break;
	case GTR_EV_GIL_ENABLED:
		gil_enabled(r, thread, e);
		break;
	case GTR_EV_BLOCK_BEGIN:
		if (!th->blocked) {
			th->blocked = true;
			th->blocked_since = e->ns;
		}
		break;
	case GTR_EV_BLOCK_END:
		end_block(r, thread, e->ns);
		break;
	case GTR_EV_MODULE_LOAD:
		r->threads[thread].last_load = e->payload[0];
		r->threads[thread].last_load_ns = e->ns;
		break;
	case GTR_EV_GIL_REINIT: {
		struct replay_gil *g = &r->gils[e->arg];
		g->seen = true;
		if (g->holder >= 0) {
			int holder = g->holder;
			end_hold(r, holder, e->ns);
			lane_change(r, holder, settled(&r->threads[holder]), e->ns);
		}
		g->last_releaser = -1;
		g->switch_known = false;
		break;
	}
	case GTR_EV_THREAD_EXIT:
		/* an unknown how: the process exit, which ends the trace */
		th->exit = gtr_exit_how(e->arg) == GTR_EXIT_RETURN || gtr_exit_how(e->arg) == GTR_EXIT_PTHREAD_EXIT
		                   ? (enum thread_end)gtr_exit_how(e->arg)
		                   : THREAD_END_PROCESS;
		th->exit_held_gil = gtr_exit_held_gil(e->arg);
		th->exit_ns = e->ns;
		if (th->exit != THREAD_END_PROCESS) { /* else it keeps what it holds to the end */
			lane_end(r, thread, e->ns);
			EMIT(r, thread_end, thread, e);
		}
		break;
	case GTR_EV_THREAD_PARK:
		th->exit = THREAD_END_PARKED;
		th->exit_held_gil = gtr_exit_held_gil(e->arg);
		th->exit_ns = e->ns;
		lane_end(r, thread, e->ns);
		EMIT(r, thread_end, thread, e);
		break;
	case GTR_EV_FINALIZING:
		/* the flag is sampled by whichever thread looks: an epoch
		 * begins at the first sample that shows it set */
		if (e->arg && !r->finalizing)
			begin_epoch(r, thread, e);
		else if (!e->arg && r->finalizing)
			end_epoch(r, e->ns);
		break;
	case GTR_EV_CAPI_CALL:
		if (e->arg == GTR_CAPI_Py_FinalizeEx)
			on_finalize_call(r, thread, e);
		break;
	case GTR_EV_CAPI_RETURN:
		if (e->arg == GTR_CAPI_Py_FinalizeEx)
			on_finalize_return(r, e);
		else if (starts_new_runtime(e->arg) && r->finalizing)
			end_epoch(r, e->ns);
		break;
	default:
		break;
	}
	if (r->lanes)
		lane_change(r, thread, settled(th), e->ns);
	if (th->first_ns == UINT64_MAX)
		th->first_ns = e->ns;
	th->last_event_ns = e->ns;
	uint64_t bit = REPLAY_EVENT(e->type);
	for (size_t v = 0; v < r->visitor_count; v++) {
		const struct replay_visitor *vis = r->visitors[v];
		if ((vis->events | (r->epoch_count ? vis->events_after_finalization : 0)) & bit)
			vis->event(vis->ctx, r, e);
	}
}

/* Holds, waits and lanes still open at the end of the trace. */
static void replay_finish(struct replay *r)
{
	r->at = SIZE_MAX; /* what closes now was open at the end */
	uint64_t end = r->end_ns;
	const struct trace *t = r->trace;
	for (size_t i = 0; i < r->thread_count; i++) {
		struct replay_thread *th = &r->threads[i];
		/* a hold to the end, unless the thread's later events are lost:
		 * then only to its last one */
		if (th->holding >= 0 && trace_thread_lost_within(t, (uint32_t)i, th->hold_since, end)) {
			uint64_t last = th->last_event_ns > th->hold_since ? th->last_event_ns : th->hold_since;
			end_hold(r, (int)i, last);
			lane_change(r, (int)i, settled(th), last);
		} else if (th->holding >= 0) {
			end_hold(r, (int)i, end);
		}
		end_wait(r, (int)i, end);
		end_block(r, (int)i, end);
		if (r->lanes && th->alive && !th->ended && end > th->lane_since)
			EMIT(r, interval, (int)i, th->lane, th->lane_since, end);
	}
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++) {
		struct replay_gil *g = &r->gils[gi];
		if (!g->seen)
			continue;
		/* no acquisition follows to give a switch number: any loss counts */
		EMIT(r, unheld, gi, g->last_hold_end, end,
		     end > g->last_hold_end && trace_lost_within(t, g->last_hold_end, end, true));
	}
	EMIT(r, finish);
}

const char *thread_end_name(enum thread_end end)
{
	switch (end) {
	case THREAD_END_NONE:
		return NULL;
	case THREAD_END_RETURN:
	case THREAD_END_PTHREAD_EXIT:
	case THREAD_END_PROCESS:
		return trace_exit_how_name(end);
	case THREAD_END_PARKED:
		return "parked";
	}
	return NULL;
}

int replay_run(struct replay *r, struct trace *t, const struct replay_visitor *const *visitors, size_t count)
{
	return replay_run_with(r, t, visitors, count, NULL);
}

int replay_run_with(struct replay *r, struct trace *t, const struct replay_visitor *const *visitors, size_t count,
                    const struct replay_options *opt)
{
	static const struct replay_options none;
	if (!opt)
		opt = &none;
	memset(r, 0, sizeof *r);
	r->trace = t;
	r->visitors = visitors;
	r->visitor_count = count;
	for (size_t v = 0; v < count; v++) {
		const struct replay_visitor *x = visitors[v];
		r->has.hold |= x->hold != NULL;
		r->has.wait |= x->wait != NULL;
		r->has.blocked |= x->blocked != NULL;
		r->has.unheld |= x->unheld != NULL;
		r->has.gap |= x->gap != NULL;
		r->has.acquire |= x->acquire != NULL;
		r->has.handoff |= x->handoff != NULL;
		r->has.handoff_lost |= x->handoff_lost != NULL;
		r->has.interval |= x->interval != NULL;
		r->has.thread_end |= x->thread_end != NULL;
		r->has.epoch_begin |= x->epoch_begin != NULL;
		r->has.epoch_end |= x->epoch_end != NULL;
		r->has.finish |= x->finish != NULL;
		r->lanes |= x->interval != NULL;
		if (!visitors[v]->event && (visitors[v]->events | visitors[v]->events_after_finalization))
			return -1; /* a caller's bug: no callback for its events */
	}
	r->finalize_call.caller = -1;
	r->thread_count = t->thread_count;
	r->threads = calloc(t->thread_count ? t->thread_count : 1, sizeof *r->threads);
	if (!r->threads)
		return -1;
	for (size_t i = 0; i < t->thread_count; i++) {
		r->threads[i].holding = -1;
		r->threads[i].first_ns = UINT64_MAX;
	}
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++) {
		r->gils[gi].holder = -1;
		r->gils[gi].last_releaser = -1;
		r->gils[gi].last_acquirer = -1;
		r->gils[gi].enabled_for_good_ns = UINT64_MAX;
		r->gils[gi].enabled_by = r->gils[gi].for_good_by = -1;
	}
	for (size_t i = 0; i < t->gil_count; i++)
		r->gils[t->gils[i].index % REPLAY_MAX_GILS].seen = true;
	struct replay_checkpoints *cps = opt->take;
	if (cps) {
		r->lanes = true; /* the views resumed from them draw lanes */
		if (checkpoint_start(cps, r, opt->take_every) != 0)
			return -1;
	}
	const struct replay_checkpoint *from = checkpoint_before(opt->resume, opt->resume_before_ns);
	struct trace_walk *walk = from ? checkpoint_restore(r, t, from) : trace_walk_begin(t);
	if (!walk)
		return -1;
	const struct trace_event *e;
	while (!r->oom && (e = trace_walk_next(walk))) {
		r->at = e->index;
		replay_event(r, e);
		if (cps && (r->at + 1) % cps->every == 0 && checkpoint_take(cps, r, walk, e->ns) != 0)
			r->oom = true;
	}
	if (trace_walk_end(walk) != 0 || r->oom)
		return -1;
	r->end_ns = t->end_ns; /* known once the trace was walked */
	replay_finish(r);
	return 0;
}

void replay_free(struct replay *r)
{
	free(r->threads);
	free(r->epochs);
	lines_free(r->errors, r->error_count);
	memset(r, 0, sizeof *r);
}

int replay_epoch_thread(const struct replay_epoch *ep)
{
	return ep->finalizing_thread >= 0 ? ep->finalizing_thread : ep->noticed_by;
}
