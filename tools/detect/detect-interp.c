/*
 * detect-interp.c: gilstate-wrong-interpreter, a native thread started from
 * a subinterpreter that PyGILState_Ensure put in the main interpreter.
 *
 * PyGILState_Ensure on a thread with no thread state of its own makes one
 * in the runtime's "auto" interpreter, the main one (gh-59956, seen on
 * 3.8-3.13; docs/cpython-internals.md §8): the PyGILState_* API
 * does not know subinterpreters.  A native thread that a subinterpreter's
 * C code starts and that calls back into Python through it runs in the
 * wrong interpreter: on objects of another interpreter, and under another
 * GIL than theirs when the subinterpreter has its own (3.12+).
 *
 * The shim writes THREAD_INTERP only for threads started by a thread that
 * held a subinterpreter's GIL (the creator's interpreter first, then the
 * one each Ensure gave).  One finding per thread, at its first Ensure that
 * gave the main interpreter.  A thread that the subinterpreter's own
 * threading module started has a thread state of that interpreter bound
 * to it, so its Ensure calls stay there and are not reported.
 */
#include "detect-walk.h"

#include <inttypes.h>
#include <stdio.h>

void detect_interp_event(struct walk *w, int thread, const struct trace_event *e)
{
	struct thread_state *ts = &w->threads[thread];
	uint64_t interp = e->payload[0], main_interp = e->payload[1];

	if (e->arg == GTR_INTERP_OF_CREATOR) {
		ts->creator_interp = interp;
		ts->creator = ts->parent_tid ? walk_thread_of_tid(w, ts->parent_tid, e->ns) : -1;
		ts->creator_gil = ts->creator >= 0 ? w->threads[ts->creator].last_gil : -1;
		return;
	}
	if (e->arg != GTR_INTERP_OF_GILSTATE || !ts->creator_interp || interp != main_interp || ts->interp_reported)
		return;
	ts->interp_reported = true;
	struct finding *x = walk_add_finding(w, DETECT_GILSTATE_WRONG_INTERPRETER, thread, e->ns);
	if (!x)
		return;
	x->capi = GTR_CAPI_PyGILState_Ensure;
	x->caller = ts->ensure_caller;
	x->stack_event = walk_with_stack(w, w->at, ts->ensure_event);
	char creator[96] = "its creator", gils[96] = "";
	if (ts->creator >= 0)
		walk_thread_label(w, ts->creator, creator, sizeof creator);
	if (ts->creator_gil >= 0 && ts->last_gil >= 0 && ts->creator_gil != ts->last_gil)
		snprintf(gils, sizeof gils, " and with it GIL %d, not the subinterpreter's GIL %d", ts->last_gil,
		         ts->creator_gil);
	snprintf(x->what, sizeof x->what,
	         "was started by %s in subinterpreter 0x%" PRIx64 ", but its PyGILState_Ensure gave it a thread "
	         "state of the main interpreter (0x%" PRIx64 ")%s: the PyGILState API knows only the main "
	         "interpreter (gh-59956)",
	         creator, ts->creator_interp, main_interp, gils);
}
