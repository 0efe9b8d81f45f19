/*
 * detect-guard.c: PEP 788's interpreter guards and thread-state tokens
 * (CPython 3.15; docs/cpython-internals.md §8), from the C-API calls the
 * shim records around them (shim/wrap-capi.c).
 *
 *   guard-never-closed         a guard made and not closed before
 *                              Py_FinalizeEx was entered: finalization
 *                              waits for every guard, so the process hangs
 *   tstate-release-unbalanced  PyThreadState_Release by a thread with no
 *                              successful PyThreadState_Ensure left open:
 *                              the per-thread-state counter goes below zero,
 *                              a fatal error in CPython
 *   ensure-refused-at-exit     (note) PyThreadState_EnsureFromView or a
 *                              guard refused (NULL) while the interpreter
 *                              finalizes: what PEP 788 does instead of
 *                              hanging, as PyGILState_Ensure would; the
 *                              caller must give up
 *
 * From CPython's source alone: no 3.15 interpreter was tested; the unit
 * tests (tests/unit/test-detect.c) give these detectors hand-made traces.
 */
#include "detect-walk.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

struct guard {
	uint64_t addr;
	int thread;
	uint64_t ns;
	unsigned fn;                 /* the call that made it */
	uint64_t caller;
	size_t event;
	bool closed;
};

struct guard_watch {
	struct guard *guards;
	size_t count, cap;
	bool finalize_entered;       /* Py_FinalizeEx or Py_Finalize was called: */
	uint64_t finalize_ns;        /* the first such call after a guard was made */
	int finalize_thread;
};

static struct guard_watch *watch(struct walk *w)
{
	if (!w->guards && !(w->guards = calloc(1, sizeof *w->guards)))
		w->oom = true;
	return w->guards;
}

static void refused(struct walk *w, int thread, const struct trace_event *e)
{
	struct finding *x = walk_add_finding(w, DETECT_ENSURE_REFUSED_AT_EXIT, thread, e->ns);
	if (!x)
		return;
	x->capi = e->arg;
	x->caller = w->threads[thread].guard_caller;
	x->stack_event = walk_with_stack(w, w->threads[thread].guard_event, SIZE_MAX);
	snprintf(x->what, sizeof x->what,
	         "was refused by %s (NULL) because the interpreter was finalizing: PEP 788's answer where "
	         "PyGILState_Ensure would hang; the caller must give up its work",
	         trace_capi_name(e->arg));
}

static void on_call(struct walk *w, int thread, const struct trace_event *e)
{
	struct thread_state *ts = &w->threads[thread];
	struct guard_watch *gw;
	ts->guard_caller = e->payload[1];
	ts->guard_event = w->at;
	switch (e->arg) {
	case GTR_CAPI_PyInterpreterGuard_Close:
		if (!(gw = watch(w)))
			return;
		for (size_t i = gw->count; i-- > 0;)
			if (gw->guards[i].addr == e->payload[0] && !gw->guards[i].closed) {
				gw->guards[i].closed = true;
				break;
			}
		break;
	case GTR_CAPI_PyThreadState_Release:
		if (ts->tokens_open > 0) {
			ts->tokens_open--;
		} else {
			struct finding *x = walk_add_finding(w, DETECT_TSTATE_RELEASE_UNBALANCED, thread, e->ns);
			if (!x)
				return;
			x->capi = e->arg;
			x->caller = e->payload[1];
			x->stack_event = walk_with_stack(w, w->at, SIZE_MAX);
			snprintf(x->what, sizeof x->what,
			         "called PyThreadState_Release(0x%" PRIx64 ") with no PyThreadState_Ensure of its own "
			         "left to release: one release too many, which CPython ends with a fatal error (PEP 788)",
			         e->payload[0]);
		}
		break;
	case GTR_CAPI_Py_FinalizeEx:
	case GTR_CAPI_Py_Finalize:
		if (w->guards && !w->guards->finalize_entered) {
			w->guards->finalize_entered = true;
			w->guards->finalize_ns = e->ns;
			w->guards->finalize_thread = thread;
		}
		break;
	default:
		break;
	}
}

static void on_return(struct walk *w, int thread, const struct trace_event *e)
{
	struct thread_state *ts = &w->threads[thread];
	uint64_t result = e->payload[0];
	struct guard_watch *gw;
	switch (e->arg) {
	case GTR_CAPI_PyInterpreterGuard_FromCurrent:
	case GTR_CAPI_PyInterpreterGuard_FromView:
		if (!result) {
			if (finalizing_at(w, e->ns))
				refused(w, thread, e);
			return;
		}
		if (!(gw = watch(w)))
			return;
		if (gw->count == gw->cap) {
			size_t cap = gw->cap ? gw->cap * 2 : 8;
			struct guard *grown = realloc(gw->guards, cap * sizeof *grown);
			if (!grown) {
				w->oom = true;
				return;
			}
			gw->guards = grown;
			gw->cap = cap;
		}
		gw->guards[gw->count++] = (struct guard){ result, thread, e->ns, e->arg, ts->guard_caller,
			                                  ts->guard_event, false };
		break;
	case GTR_CAPI_PyThreadState_Ensure:
	case GTR_CAPI_PyThreadState_EnsureFromView:
		if (result)
			ts->tokens_open++;
		else if (finalizing_at(w, e->ns))
			refused(w, thread, e);
		break;
	default:
		break;
	}
}

void detect_guard_event(struct walk *w, int thread, const struct trace_event *e)
{
	if (e->type == GTR_EV_CAPI_CALL)
		on_call(w, thread, e);
	else
		on_return(w, thread, e);
}

/* Open guards are an error where finalization was entered after them (a
 * Py_FinalizeEx call the shim saw), or where giltrace ended the process for
 * a hang (a snapshot): a plain python's Py_RunMain calls Py_FinalizeEx
 * internally, where static and optimised builds hide the call, and the
 * wait for guards comes before the finalizing flag. */
void detect_guard_end(struct walk *w)
{
	const struct guard_watch *gw = w->guards;
	bool hung = w->t->snapshot != NULL;
	if (!gw || (!gw->finalize_entered && !hung))
		return;
	for (size_t i = 0; i < gw->count; i++) {
		const struct guard *g = &gw->guards[i];
		if (g->closed || (gw->finalize_entered && g->ns > gw->finalize_ns))
			continue;
		struct finding *x = walk_add_finding(w, DETECT_GUARD_NEVER_CLOSED, g->thread, g->ns);
		if (!x)
			return;
		char who[96] = "a thread";
		x->capi = g->fn;
		x->caller = g->caller;
		x->stack_event = walk_with_stack(w, g->event, SIZE_MAX);
		if (!gw->finalize_entered) {
			snprintf(x->what, sizeof x->what,
			         "made interpreter guard 0x%" PRIx64 " and never closed it (PyInterpreterGuard_Close); it "
			         "was still open when giltrace ended the hung process: finalization waits for every "
			         "guard (PEP 788)",
			         g->addr);
			continue;
		}
		walk_thread_label(w, gw->finalize_thread, who, sizeof who);
		snprintf(x->what, sizeof x->what,
		         "made interpreter guard 0x%" PRIx64 " and never closed it (PyInterpreterGuard_Close): "
		         "%s entered Py_FinalizeEx at +%.3f ms, and finalization waits for every guard (PEP 788), "
		         "so the process hangs there",
		         g->addr, who, (double)gw->finalize_ns / 1e6);
	}
}

void detect_guard_free(struct walk *w)
{
	if (w->guards)
		free(w->guards->guards);
	free(w->guards);
	w->guards = NULL;
}
