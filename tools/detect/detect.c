/*
 * detect.c: the detectors.  See detect.h and docs/findings.md.
 *
 * A visitor of the replay (replay.h), which says who holds which GIL and
 * which finalization epoch is under way (and which thread finalizes), the
 * detectors keep, per thread state, whether it was freed (by whom, when)
 * and, per thread, a "watch" on what it does once finalization has begun:
 *
 *   NONE -> ENTERING   it called a C-API function that takes the GIL, or
 *                      entered take_gil
 *        -> ACQUIRED   it acquired the GIL
 *        -> RELEASED   it released it again
 *
 * CPython's must-exit checks (docs/cpython-internals.md §2) end such a thread at
 * once: pthread_exit or pause() straight from ENTERING or RELEASED is the
 * expected path (the notes exit-in-take-gil, parked-at-exit).  Any other
 * event of the thread while ACQUIRED or RELEASED means it went on running
 * after finalization began (gil-after-finalize, or freed-tstate-use when it
 * did so with a freed thread state).
 *
 * A freed thread state stays "freed" until something shows a new one at the
 * same address: PyThreadState_New or Py_NewInterpreter returning it, the
 * shim seeing malloc/calloc return its block again with the same usable
 * size (TSTATE_REUSE: how 3.13 makes the thread states of subinterpreter
 * imports, docs/findings.md), or, outside finalization, a thread acquiring
 * the GIL with it (the interpreter made a thread state that no wrapper saw,
 * in a block malloc reused, in a trace without REUSE events).  A
 * C-API call with a freed thread state is a use of it only if the calling
 * thread had used that thread state before it was freed: a thread passing
 * an address it never held before got a new thread state there.
 *
 * A crash (GTR_EV_CRASH: the shim's handler saw a fatal signal) is
 * explained by what the detectors know at that moment: a fault inside a
 * freed thread state's block, a debug build's freed-memory pattern
 * (0xdd...) as the address while the thread's own thread state is freed,
 * or a thread on its watched way into the GIL with a freed thread state
 * make it freed-tstate-use; any other crash during finalization is
 * crash-at-exit, with what every other thread was doing; one outside
 * finalization is crash.  The finding is made at the crash and dropped if
 * the same thread records anything after it but the process's exit: its
 * handler recovered (siglongjmp, a fixed mapping) and the signal was not
 * fatal.
 */
#include "detect.h"
#include "detect-walk.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct detector_info detectors[DETECT_COUNT] = {
	[DETECT_FREED_TSTATE_USE] = { "freed-tstate-use", SEVERITY_ERROR,
		                      "a thread used a freed PyThreadState" },
	[DETECT_GIL_AFTER_FINALIZE] = { "gil-after-finalize", SEVERITY_ERROR,
		                        "a thread kept running with the GIL after finalization began" },
	[DETECT_EXIT_HOLDING_GIL] = { "exit-holding-gil", SEVERITY_ERROR, "a thread ended while it held the GIL" },
	[DETECT_GILSTATE_AFTER_FINALIZE] = { "gilstate-after-finalize", SEVERITY_ERROR,
		                             "C code asked for the GIL after finalization began" },
	[DETECT_SWITCH_WAIT_ON_DEAD_THREAD] = { "switch-wait-on-dead-thread", SEVERITY_ERROR,
		                                "the GIL holder waits for a forced switch to a thread that exited" },
	[DETECT_EXIT_IN_TAKE_GIL] = { "exit-in-take-gil", SEVERITY_NOTE,
		                      "finalization ended a thread that was taking the GIL" },
	[DETECT_PARKED_AT_EXIT] = { "parked-at-exit", SEVERITY_NOTE,
		                    "finalization parked a thread that was taking the GIL" },
	[DETECT_CRASH_AT_EXIT] = { "crash-at-exit", SEVERITY_ERROR, "a thread crashed during finalization" },
	[DETECT_CRASH] = { "crash", SEVERITY_ERROR, "a thread crashed" },
	[DETECT_EXIT_HANG] = { "exit-hang", SEVERITY_ERROR,
		               "the process hung: it outlived giltrace's --timeout or --exit-timeout, which ended it" },
	[DETECT_EXIT_LOCK_HELD] = { "exit-lock-held", SEVERITY_ERROR,
		                    "finalization waited for a lock held by a thread that will never release it" },
	[DETECT_GILSTATE_WRONG_INTERPRETER] = { "gilstate-wrong-interpreter", SEVERITY_ERROR,
		                                "a subinterpreter's thread was given the main interpreter by PyGILState_Ensure" },
	[DETECT_GUARD_NEVER_CLOSED] = { "guard-never-closed", SEVERITY_ERROR,
		                        "an interpreter guard was never closed: finalization waits for it" },
	[DETECT_TSTATE_RELEASE_UNBALANCED] = { "tstate-release-unbalanced", SEVERITY_ERROR,
		                               "PyThreadState_Release without a PyThreadState_Ensure to match" },
	[DETECT_ENSURE_REFUSED_AT_EXIT] = { "ensure-refused-at-exit", SEVERITY_NOTE,
		                            "a thread state or guard was refused because the interpreter was finalizing" },
};

/* ---- thread-state lives ---------------------------------------------------- */

static size_t life_slot(const struct walk *w, uint64_t addr)
{
	size_t i = (size_t)((addr >> 4) * UINT64_C(0x9e3779b97f4a7c15) >> 20) & (w->life_cap - 1);
	while (w->lives[i].addr && w->lives[i].addr != addr)
		i = (i + 1) & (w->life_cap - 1);
	return i;
}

static struct tstate_life *life_find(const struct walk *w, uint64_t addr)
{
	if (!addr)
		return NULL;
	struct tstate_life *l = &w->lives[life_slot(w, addr)];
	return l->addr ? l : NULL;
}

static struct tstate_life *life_get(struct walk *w, uint64_t addr)
{
	if ((w->life_count + 1) * 2 > w->life_cap) {
		size_t cap = w->life_cap * 2;
		struct tstate_life *old = w->lives, *grown = calloc(cap, sizeof *grown);
		if (!grown) {
			w->oom = true;
			return NULL;
		}
		size_t old_cap = w->life_cap;
		w->lives = grown;
		w->life_cap = cap;
		for (size_t i = 0; i < old_cap; i++)
			if (old[i].addr)
				w->lives[life_slot(w, old[i].addr)] = old[i];
		free(old);
	}
	struct tstate_life *l = &w->lives[life_slot(w, addr)];
	if (!l->addr) {
		l->addr = addr;
		l->freed_by = -1;
		w->life_count++;
	}
	return l;
}

const struct tstate_life *walk_freed_life(const struct walk *w, uint64_t addr)
{
	const struct tstate_life *l = life_find(w, addr);
	return l && l->freed ? l : NULL;
}

/* A thread state was made (or shown to exist) at addr. */
static void life_renewed(struct walk *w, uint64_t addr)
{
	struct tstate_life *l = life_find(w, addr);
	if (l)
		l->freed = false;
}

/* Thread `ts` uses thread state addr at ns (idempotent while it keeps it). */
static void bind(struct thread_state *ts, uint64_t addr, uint64_t ns)
{
	if (!addr)
		return;
	unsigned i = 0;
	while (i < BINDINGS - 1 && ts->bound[i] && ts->bound[i] != addr)
		i++;
	if (ts->bound[i] == addr && i == 0)
		return;
	uint64_t since = ts->bound[i] == addr ? ts->bound_ns[i] : ns;
	memmove(&ts->bound[1], &ts->bound[0], i * sizeof ts->bound[0]);
	memmove(&ts->bound_ns[1], &ts->bound_ns[0], i * sizeof ts->bound_ns[0]);
	ts->bound[0] = addr;
	ts->bound_ns[0] = since;
}

/* The freed life of addr if `ts` used addr before it was freed. */
const struct tstate_life *walk_used_after_free(const struct walk *w, const struct thread_state *ts, uint64_t addr)
{
	const struct tstate_life *l = walk_freed_life(w, addr);
	if (!l)
		return NULL;
	for (unsigned i = 0; i < BINDINGS && ts->bound[i]; i++)
		if (ts->bound[i] == addr)
			return ts->bound_ns[i] <= l->freed_ns ? l : NULL;
	return NULL;
}

/* ---- findings ----------------------------------------------------------------- */

static void watch_finding(struct walk *w, int thread, uint64_t ns, enum detector kind, const char *how)
{
	struct thread_state *ts = &w->threads[thread];
	struct finding *x = walk_add_finding(w, kind, thread, ns);
	if (!x)
		return;
	char entry[64];
	walk_describe_entry(ts, entry, sizeof entry);
	x->capi = ts->capi;
	x->caller = ts->caller;
	/* an exit or park shows where the must-exit check ended the thread
	 * (its stack runs through the call); anything else, the call */
	if (kind == DETECT_EXIT_IN_TAKE_GIL || kind == DETECT_PARKED_AT_EXIT)
		x->stack_event = walk_with_stack(w, w->at, ts->watch_event);
	else
		x->stack_event = walk_with_stack(w, ts->watch_event, w->at);
	walk_with_tstate(w, x, ts->watch_tstate ? ts->watch_tstate : ts->tstate);
	snprintf(x->what, sizeof x->what, "entered %s%s after finalization began and %s", entry,
	         x->freed ? " with a freed thread state" : "", how);
	ts->watch = WATCH_DONE;
}

/* The watched thread went on running: an error, once per thread. */
static void kept_running(struct walk *w, int thread, uint64_t ns, const char *how)
{
	struct thread_state *ts = &w->threads[thread];
	uint64_t tstate = ts->watch_tstate ? ts->watch_tstate : ts->tstate;
	watch_finding(w, thread, ns, walk_freed_life(w, tstate) ? DETECT_FREED_TSTATE_USE : DETECT_GIL_AFTER_FINALIZE,
	              how);
	ts->reported_error = true;
}

bool walk_watched(const struct walk *w, int thread, uint64_t ns)
{
	const struct replay_epoch *ep = replay_open_epoch(w->r);
	return ep && ns >= ep->start_ns && thread != replay_epoch_thread(ep) && w->threads[thread].watch != WATCH_DONE;
}

/* ---- events -------------------------------------------------------------------- */

static bool takes_gil(unsigned fn)
{
	return fn == GTR_CAPI_PyEval_RestoreThread || fn == GTR_CAPI_PyEval_AcquireThread ||
	       fn == GTR_CAPI_PyEval_AcquireLock || fn == GTR_CAPI_PyGILState_Ensure;
}

/* The caller is the interpreter itself (the object holding _PyRuntime). */
static bool called_by_interpreter(const struct walk *w, uint64_t caller)
{
	const struct trace *t = w->t;
	const struct trace_module *runtime = trace_module_of(t, t->header.py_runtime_addr);
	return runtime && trace_module_of(t, caller) == runtime;
}

static void on_capi_call(struct walk *w, int thread, const struct trace_event *e)
{
	struct thread_state *ts = &w->threads[thread];
	unsigned fn = e->arg;
	uint64_t subject = gtr_capi_subject_is_tstate(fn) ? e->payload[0] : 0, caller = e->payload[1];
	bool in_watch = walk_watched(w, thread, e->ns);

	if (fn == GTR_CAPI_PyThread_exit_thread)
		return; /* on the way out: the exit event decides */
	if (in_watch && (ts->watch == WATCH_ACQUIRED || ts->watch == WATCH_RELEASED)) {
		char how[96];
		snprintf(how, sizeof how, "went on to call %s", trace_capi_name(fn));
		kept_running(w, thread, e->ns, how);
		return;
	}
	if (in_watch && (fn == GTR_CAPI_PyGILState_Ensure || fn == GTR_CAPI_PyEval_AcquireThread) &&
	    !called_by_interpreter(w, caller)) {
		struct finding *x = walk_add_finding(w, DETECT_GILSTATE_AFTER_FINALIZE, thread, e->ns);
		if (x) {
			x->capi = fn;
			x->caller = caller;
			x->stack_event = walk_with_stack(w, w->at, SIZE_MAX);
			walk_with_tstate(w, x, subject);
			snprintf(x->what, sizeof x->what, "called %s after finalization began, without checking Py_IsFinalizing()",
			         trace_capi_name(fn));
		}
	}
	const struct tstate_life *freed = subject ? walk_used_after_free(w, ts, subject) : NULL;
	if (subject && !freed && walk_freed_life(w, subject))
		life_renewed(w, subject); /* a new thread state this thread never held */
	/* A freed thread state is protected only on its way into take_gil,
	 * by a thread the must-exit checks apply to. */
	bool protected = in_watch && takes_gil(fn);
	if (freed && !protected && !ts->reported_error) {
		struct finding *x = walk_add_finding(w, DETECT_FREED_TSTATE_USE, thread, e->ns);
		if (x) {
			x->capi = fn;
			x->caller = caller;
			x->stack_event = walk_with_stack(w, w->at, SIZE_MAX);
			walk_with_tstate(w, x, subject);
			snprintf(x->what, sizeof x->what, "passed a freed thread state to %s%s", trace_capi_name(fn),
			         finalizing_at(w, e->ns) ? "" : " while the runtime was not finalizing");
		}
		ts->reported_error = true;
	}
	if (!freed)
		bind(ts, subject, e->ns);
	if (in_watch && takes_gil(fn) && ts->watch == WATCH_NONE) {
		ts->watch = WATCH_ENTERING;
		ts->capi = fn;
		ts->caller = caller;
		ts->watch_tstate = subject;
		ts->watch_event = w->at;
	} else if (in_watch && takes_gil(fn) && ts->watch == WATCH_ENTERING && subject && !ts->watch_tstate) {
		ts->watch_tstate = subject; /* PyGILState_Ensure -> PyEval_RestoreThread */
	}
}

static void on_capi_return(struct walk *w, int thread, const struct trace_event *e)
{
	struct thread_state *ts = &w->threads[thread];
	unsigned fn = e->arg;
	uint64_t result = e->payload[0];
	switch (fn) {
	case GTR_CAPI_PyThreadState_New:
	case GTR_CAPI_Py_NewInterpreter:
		life_renewed(w, result);
		bind(ts, result, e->ns);
		break;
	case GTR_CAPI_PyEval_SaveThread:
	case GTR_CAPI_PyThreadState_Swap:
		if (!finalizing_at(w, e->ns))
			life_renewed(w, result);
		if (!walk_freed_life(w, result))
			bind(ts, result, e->ns);
		break;
	default:
		break;
	}
	if (takes_gil(fn) && walk_watched(w, thread, e->ns) &&
	    (ts->watch == WATCH_ACQUIRED || ts->watch == WATCH_ENTERING)) {
		char how[96];
		snprintf(how, sizeof how, "returned from %s to its caller", trace_capi_name(fn));
		kept_running(w, thread, e->ns, how);
	}
}

static void on_acquire(struct walk *w, int thread, const struct trace_event *e)
{
	struct thread_state *ts = &w->threads[thread];
	uint64_t tstate = e->payload[0];
	if (walk_watched(w, thread, e->ns)) {
		if (ts->watch == WATCH_ACQUIRED || ts->watch == WATCH_RELEASED) {
			kept_running(w, thread, e->ns, "acquired the GIL again");
			return;
		}
		if (ts->watch == WATCH_NONE) {
			ts->capi = 0;
			ts->caller = 0;
			ts->watch_event = w->at;
		}
		if (!ts->watch_tstate)
			ts->watch_tstate = tstate;
		ts->watch = WATCH_ACQUIRED;
	} else if (!finalizing_at(w, e->ns)) {
		life_renewed(w, tstate);
	}
	if (!walk_freed_life(w, tstate))
		bind(ts, tstate, e->ns);
	ts->tstate = tstate;
	ts->freed_own_tstate = false;
}

static void on_thread_exit(struct walk *w, int thread, const struct trace_event *e)
{
	struct thread_state *ts = &w->threads[thread];
	unsigned how = gtr_exit_how(e->arg);
	bool held = gtr_exit_held_gil(e->arg);
	if (held && (how == GTR_EXIT_RETURN || how == GTR_EXIT_PTHREAD_EXIT)) {
		struct finding *x = walk_add_finding(w, DETECT_EXIT_HOLDING_GIL, thread, e->ns);
		if (x) {
			x->stack_event = walk_with_stack(w, w->at, SIZE_MAX);
			walk_with_tstate(w, x, ts->tstate);
			snprintf(x->what, sizeof x->what, "%s while it held the GIL; no other thread can take it again",
			         how == GTR_EXIT_RETURN ? "returned from its start routine" : "called pthread_exit()");
		}
		ts->watch = WATCH_DONE;
		return;
	}
	if (!walk_watched(w, thread, e->ns) || how == GTR_EXIT_PROCESS)
		return;
	switch (ts->watch) {
	case WATCH_ACQUIRED:
	case WATCH_RELEASED:
		if (how == GTR_EXIT_RETURN) {
			kept_running(w, thread, e->ns, "ran on until its start routine returned");
			return;
		}
		/* fall through */
	case WATCH_ENTERING:
		watch_finding(w, thread, e->ns, DETECT_EXIT_IN_TAKE_GIL, "was ended there (pthread_exit)");
		break;
	case WATCH_NONE:
		/* 3.9+: the check before take_gil ends it with no GIL event; a
		 * thread that freed its own thread state is ending normally */
		if (how == GTR_EXIT_PTHREAD_EXIT && !ts->freed_own_tstate) {
			ts->watch_tstate = ts->tstate;
			ts->watch_event = SIZE_MAX;
			watch_finding(w, thread, e->ns, DETECT_EXIT_IN_TAKE_GIL, "was ended there (pthread_exit)");
		}
		break;
	case WATCH_DONE:
		break;
	}
}

static void on_park(struct walk *w, int thread, const struct trace_event *e)
{
	struct thread_state *ts = &w->threads[thread];
	if (!walk_watched(w, thread, e->ns))
		return;
	if (ts->watch == WATCH_NONE) {
		ts->watch_tstate = ts->tstate;
		ts->watch_event = SIZE_MAX;
	}
	watch_finding(w, thread, e->ns, DETECT_PARKED_AT_EXIT, "was parked there for good (pause)");
}

/* Every other event of a thread whose watch says it should be leaving. */
static void on_other(struct walk *w, int thread, const struct trace_event *e)
{
	struct thread_state *ts = &w->threads[thread];
	if (!walk_watched(w, thread, e->ns))
		return;
	switch (e->type) {
	case GTR_EV_GIL_TAKE_BEGIN:
	case GTR_EV_GIL_WAIT_BEGIN:
		if (ts->watch == WATCH_NONE) {
			ts->watch = WATCH_ENTERING;
			ts->capi = 0;
			ts->caller = 0;
			ts->watch_tstate = 0;
			ts->watch_event = w->at;
		} else if (ts->watch == WATCH_RELEASED) {
			kept_running(w, thread, e->ns, "went back into take_gil");
		}
		break;
	case GTR_EV_GIL_RELEASE:
		if (ts->watch == WATCH_ACQUIRED)
			ts->watch = WATCH_RELEASED;
		break;
	case GTR_EV_TSTATE_FREE:
	case GTR_EV_THREAD_START:
	case GTR_EV_FORK:
		if (ts->watch == WATCH_ACQUIRED || ts->watch == WATCH_RELEASED)
			kept_running(w, thread, e->ns, "went on running Python code");
		break;
	default:
		break; /* waits, drop requests, forced switches, names, clocks */
	}
}

/* PEP 788's calls (detect-guard.c). */
static bool pep788(unsigned fn)
{
	return fn >= GTR_CAPI_PyInterpreterGuard_FromCurrent && fn <= GTR_CAPI_PyThreadState_Release;
}

static void walk_event(struct walk *w, const struct trace_event *e)
{
	int thread = (int)e->thread;
	struct thread_state *ts = &w->threads[thread];
	if (ts->crash_finding != SIZE_MAX && e->type != GTR_EV_CRASH &&
	    !(e->type == GTR_EV_THREAD_EXIT && gtr_exit_how(e->arg) == GTR_EXIT_PROCESS))
		detect_crash_recovered(w, ts);
	switch (e->type) {
	case GTR_EV_CRASH:
		if (ts->crash_finding != SIZE_MAX)
			detect_crash_recovered(w, ts); /* the first was not fatal: the second is */
		detect_crash(w, thread, e);
		break;
	case GTR_EV_FINALIZING:
		break; /* the replay's epochs */
	case GTR_EV_TSTATE_FREE: {
		struct tstate_life *l = life_get(w, e->payload[0]);
		if (l) {
			l->freed = true;
			l->freed_ns = e->ns;
			l->freed_by = thread;
			l->freed_event = w->at;
		}
		if (e->payload[0] == ts->tstate)
			ts->freed_own_tstate = true;
		on_other(w, thread, e);
		break;
	}
	case GTR_EV_TSTATE_REUSE:
		life_renewed(w, e->payload[0]);
		break;
	case GTR_EV_CAPI_CALL:
		if (e->arg == GTR_CAPI_PyGILState_Ensure) {
			ts->ensure_caller = e->payload[1];
			ts->ensure_event = w->at;
		}
		if (pep788(e->arg) || e->arg == GTR_CAPI_Py_FinalizeEx || e->arg == GTR_CAPI_Py_Finalize)
			detect_guard_event(w, thread, e);
		on_capi_call(w, thread, e);
		break;
	case GTR_EV_CAPI_RETURN:
		if (pep788(e->arg))
			detect_guard_event(w, thread, e);
		on_capi_return(w, thread, e);
		break;
	case GTR_EV_GIL_ACQUIRE:
	case GTR_EV_GIL_HELD_AT_FORK:
		ts->last_gil = (int)e->arg;
		on_acquire(w, thread, e);
		break;
	case GTR_EV_GIL_RELEASE:
		on_other(w, thread, e);
		break;
	case GTR_EV_GIL_DROP_REQUEST:
		w->drop_requester[e->arg] = thread;
		break;
	case GTR_EV_GIL_FORCED_SWITCH_BEGIN:
		w->forced_switch[e->arg].pending = true;
		w->forced_switch[e->arg].ns = e->ns;
		w->forced_switch[e->arg].thread = thread;
		w->forced_switch[e->arg].requester = w->drop_requester[e->arg];
		break;
	case GTR_EV_GIL_FORCED_SWITCH_END:
		w->forced_switch[e->arg].pending = false;
		break;
	case GTR_EV_THREAD_EXIT:
		on_thread_exit(w, thread, e);
		break;
	case GTR_EV_THREAD_PARK:
		on_park(w, thread, e);
		break;
	case GTR_EV_LOCK_WAIT_BEGIN:
	case GTR_EV_LOCK_WAIT_END:
	case GTR_EV_LOCK_HELD:
		detect_lock_event(w, thread, e);
		break;
	case GTR_EV_THREAD_START:
		ts->parent_tid = (int32_t)e->payload[0];
		on_other(w, thread, e);
		break;
	case GTR_EV_THREAD_INTERP:
		detect_interp_event(w, thread, e);
		break;
	default:
		on_other(w, thread, e);
		break;
	}
}

/* Threads still on their way when the trace ends, and a forced switch that
 * never ended. */
static void at_end(struct walk *w)
{
	const struct replay *r = w->r;
	uint64_t end = r->end_ns;
	bool died = w->t->truncated;
	for (size_t i = 0; i < r->thread_count; i++) {
		struct thread_state *ts = &w->threads[i];
		if (ts->watch == WATCH_ACQUIRED && died) {
			kept_running(w, (int)i, end, "still held the GIL when the process died");
		} else if (ts->watch == WATCH_ACQUIRED) {
			/* its last event: the exit raced its must-exit check */
			watch_finding(w, (int)i, end, DETECT_EXIT_IN_TAKE_GIL,
			              "acquired the GIL as the process exited, which ended it");
		} else if (ts->watch == WATCH_ENTERING || ts->watch == WATCH_RELEASED) {
			uint64_t tstate = ts->watch_tstate ? ts->watch_tstate : ts->tstate;
			/* with no crash recorded, the thread on its way with freed
			 * memory is the likely one that died */
			if (died && !w->crashes && walk_freed_life(w, tstate))
				kept_running(w, (int)i, end, "was still using it when the process died");
			else
				watch_finding(w, (int)i, end, DETECT_EXIT_IN_TAKE_GIL,
				              died ? "was still there when the process died"
				                   : "was still there when the process exited");
		}
	}
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++) {
		const struct forced_switch *fs = &w->forced_switch[gi];
		if (!fs->pending || fs->requester < 0)
			continue;
		const struct replay_thread *req = &r->threads[fs->requester];
		if (req->exit == THREAD_END_NONE || req->exit_ns > end)
			continue;
		struct finding *x = walk_add_finding(w, DETECT_SWITCH_WAIT_ON_DEAD_THREAD, fs->thread, fs->ns);
		if (x) {
			x->other_thread = fs->requester;
			walk_with_tstate(w, x, w->threads[fs->thread].tstate);
			snprintf(x->what, sizeof x->what,
			         "dropped the GIL and waits on switch_cond for thread %d, whose drop request is pending, "
			         "but that thread %s and will never take the GIL%s",
			         w->t->threads[fs->requester].tid, req->exit == THREAD_END_PARKED ? "is parked" : "has exited",
			         died ? " (the trace ends in this wait: the process hung)" : "");
		}
	}
	detect_lock_end(w);
	detect_guard_end(w);
	if (w->hang)
		detect_hang(w);
}

static int by_time(const void *a, const void *b)
{
	const struct finding *x = a, *y = b;
	return x->ns < y->ns ? -1 : x->ns > y->ns;
}

static void on_event(void *ctx, const struct replay *r, const struct trace_event *e)
{
	struct walk *w = ctx;
	if (w->oom)
		return;
	w->r = r;
	w->at = r->at;
	walk_event(w, e);
}

static void on_finish(void *ctx, const struct replay *r)
{
	struct walk *w = ctx;
	w->r = r;
	w->at = SIZE_MAX;
	if (!w->oom)
		at_end(w);
}

static void walk_free(struct walk *w)
{
	if (!w)
		return;
	free(w->lives);
	free(w->threads);
	free(w->hang);
	detect_lock_free(w);
	detect_guard_free(w);
	free(w);
}

/* The detectors as a visitor of a replay: *v gets the walk as its ctx. */
static struct walk *detect_begin(const struct trace *t, struct findings *out, struct replay_visitor *v)
{
	memset(out, 0, sizeof *out);
	struct walk *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->t = t;
	w->out = out;
	w->life_cap = 64;
	w->lives = calloc(w->life_cap, sizeof *w->lives);
	w->threads = calloc(t->thread_count ? t->thread_count : 1, sizeof *w->threads);
	if (!w->lives || !w->threads) {
		walk_free(w);
		return NULL;
	}
	for (size_t i = 0; i < t->thread_count; i++) {
		w->threads[i].watch_event = SIZE_MAX;
		w->threads[i].crash_finding = SIZE_MAX;
		w->threads[i].last_gil = -1;
		w->threads[i].ensure_event = SIZE_MAX;
		w->threads[i].guard_event = SIZE_MAX;
		w->threads[i].creator = w->threads[i].creator_gil = -1;
	}
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++) {
		w->drop_requester[gi] = -1;
		w->forced_switch[gi].requester = -1;
	}
	/* not the waits' ends, names, clocks, stacks; the flag is the
	 * replay's; what on_other() watches, only once finalization began */
	uint64_t ignored = REPLAY_EVENT(GTR_EV_GIL_WAIT_SIGNALED) | REPLAY_EVENT(GTR_EV_GIL_WAIT_TIMEOUT) |
	                   REPLAY_EVENT(GTR_EV_THREAD_NAME) | REPLAY_EVENT(GTR_EV_THREAD_PYNAME) |
	                   REPLAY_EVENT(GTR_EV_CLOCK) | REPLAY_EVENT(GTR_EV_STACK) | REPLAY_EVENT(GTR_EV_PY_STACK) |
	                   REPLAY_EVENT(GTR_EV_FINALIZING);
	uint64_t watched_only = REPLAY_EVENT(GTR_EV_GIL_TAKE_BEGIN) | REPLAY_EVENT(GTR_EV_GIL_WAIT_BEGIN) |
	                        REPLAY_EVENT(GTR_EV_GIL_RELEASE) | REPLAY_EVENT(GTR_EV_FORK);
	*v = (struct replay_visitor){
		.ctx = w,
		.event = on_event,
		.events = ~(ignored | watched_only),
		.events_after_finalization = watched_only,
		.finish = on_finish,
	};
	/* giltrace ended the process for a hang: the holds and waits open at
	 * the end say who blocks whom (only then: a cost per hold) */
	if (t->snapshot && detect_hang_begin(w, v) != 0) {
		walk_free(w);
		return NULL;
	}
	return w;
}

/* 0, or -1 when the walk ran out of memory; frees w. */
static int detect_end(struct walk *w)
{
	bool oom = w->oom;
	struct findings *out = w->out;
	walk_free(w);
	if (oom) {
		findings_free(out);
		return -1;
	}
	size_t kept = 0;
	for (size_t i = 0; i < out->count; i++)
		if (out->items[i].kind != DETECT_DROPPED)
			out->items[kept++] = out->items[i];
	out->count = kept;
	if (out->count > 1)
		qsort(out->items, out->count, sizeof *out->items, by_time);
	return 0;
}

int detect_run(const struct model *m, struct findings *out)
{
	struct replay_visitor v;
	struct walk *w = detect_begin(m->trace, out, &v);
	if (!w)
		return -1;
	const struct replay_visitor *vs[] = { &v };
	struct replay r;
	int rc = replay_run(&r, m->trace, vs, 1);
	if (rc != 0)
		w->oom = true;
	rc = detect_end(w);
	replay_free(&r);
	return rc;
}

int analyse(struct trace *t, struct model *m, struct findings *out, unsigned flags)
{
	struct replay_visitor mv, dv;
	memset(out, 0, sizeof *out);
	if (model_begin(m, t, &mv) != 0)
		return -1;
	struct walk *w = detect_begin(t, out, &dv);
	if (!w)
		return -1;
	const struct replay_visitor *vs[] = { &mv, &dv };
	struct replay r;
	struct replay_options opt = { .take = flags & ANALYSE_CHECKPOINTS ? &m->checkpoints : NULL };
	if (replay_run_with(&r, t, vs, 2, &opt) != 0)
		w->oom = true;
	int rc = model_end(m, &r);
	if (detect_end(w) != 0)
		rc = -1;
	replay_free(&r);
	return rc;
}

void findings_free(struct findings *f)
{
	for (size_t i = 0; i < f->count; i++)
		free(f->items[i].roles);
	free(f->items);
	memset(f, 0, sizeof *f);
}
