/*
 * spans.h: a trace as lanes of intervals and marks, for the renderers
 * (timeline, the HTML report, the Chrome export).
 *
 * spans_walk() runs the replay (replay.h) and reports its lanes: per thread
 * and in time order, contiguous non-overlapping intervals of one state:
 *
 *   HELD      it held a GIL (from its acquisition to its release)
 *   WAITING   it was inside take_gil without the GIL (from its first lock of
 *             the GIL mutex to the acquisition, or to leaving without it)
 *   RELEASED  it was alive and neither
 *
 * A thread is alive from its first event to its exit or pause, else to the
 * end of the trace (the thread that ends the process, too: it keeps the GIL
 * it holds until the end).  It also reports every handoff: GIL g released
 * by one thread and next acquired by another (none across a gap).
 *
 * marks_collect() lists the instants worth a mark on a lane: finalization
 * starts, thread-state frees, thread exits and parks, findings.
 */
#ifndef GILTRACE_SPANS_H
#define GILTRACE_SPANS_H

#include <stddef.h>
#include <stdint.h>

#include "detect.h"
#include "model.h"
#include "replay.h"

struct span_visitor {
	void *ctx;
	/* thread was in state during [start_ns, end_ns), start_ns < end_ns */
	void (*span)(void *ctx, int thread, enum lane_state state, uint64_t start_ns, uint64_t end_ns);
	/* `from` released GIL gil at released_ns; `to` acquired it next, at
	 * acquired_ns.  May be NULL. */
	void (*handoff)(void *ctx, unsigned gil, int from, uint64_t released_ns, int to, uint64_t acquired_ns);
};

/* Returns 0, or -1 when out of memory. */
int spans_walk(const struct model *m, const struct span_visitor *v);

enum mark_kind {
	MARK_FINALIZE,      /* a finalization epoch began (thread: who noticed it) */
	MARK_TSTATE_FREE,   /* a thread state was freed by thread */
	MARK_THREAD_EXIT,   /* the thread ended (return, pthread_exit; not the
	                       process exit, which ends the trace) */
	MARK_THREAD_PARK,   /* the thread parked in pause() */
	MARK_FINDING,       /* findings->items[finding] */
};

struct mark {
	enum mark_kind kind;
	int thread;                /* model thread index */
	uint64_t ns;
	int finding;               /* index into findings->items, or -1 */
	/* What a renderer says of it, so that none reads the trace's events: */
	uint64_t tstate;           /* TSTATE_FREE: the thread state freed */
	unsigned end_arg;          /* THREAD_EXIT, THREAD_PARK: the event's arg
	                              (gtr_exit_how(), gtr_exit_held_gil()) */
};

/* Every mark, in time order; `findings` may be NULL.  Returns 0 or -1 (out
 * of memory); free *out with free(). */
int marks_collect(const struct model *m, const struct findings *findings, struct mark **out, size_t *count);

/* Both in one replay: v's intervals and handoffs, then the marks. */
int spans_walk_marks(const struct model *m, const struct span_visitor *v, const struct findings *findings,
                     struct mark **out, size_t *count);
/* The same for a window that starts at since_ns: intervals that end
 * after since_ns and marks and handoffs from since_ns on are all there;
 * earlier ones may be left out.  The replay starts from the model's last
 * checkpoint before since_ns (model.checkpoints, when the analysis kept
 * them), not from the beginning. */
int spans_walk_window(const struct model *m, const struct span_visitor *v, const struct findings *findings,
                      uint64_t since_ns, struct mark **out, size_t *count);

/* "finalize", "tstate-free", ... */
const char *mark_kind_name(enum mark_kind k);

#endif
