/*
 * model.h: what happened to the GIL, reconstructed from a trace.
 *
 * model_build() computes the statistics of a trace as a visitor of its
 * replay (replay.h): who held each GIL and for how long, who waited, every
 * handoff from a releasing thread to the next acquirer and its latency,
 * how each thread ended, and what happened after finalization began.  It
 * checks the replay's invariants while doing so (no two threads hold one
 * GIL at once; a thread's hold time never exceeds the run's wall time;
 * held + idle + lost == wall for each GIL) and lists any violation in
 * model.errors: a violation is a bug in giltrace, not in the traced
 * program.  Lost events count as the replay says: no handoff across a
 * gap, and the time in it lost, neither held nor idle.
 */
#ifndef GILTRACE_MODEL_H
#define GILTRACE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "latency.h"
#include "replay.h"
#include "trace.h"


struct model_thread {
	const struct trace_thread *info;
	bool is_main;              /* tid == pid */
	bool has_start;            /* THREAD_START seen (created while traced) */
	int32_t parent_tid;
	uint64_t first_ns, last_ns;
	uint64_t hold_ns, wait_ns;
	uint64_t blocked_ns, blocks; /* in the parking lot (3.13+): time, waits */
	uint64_t acquisitions, contended_acquisitions;
	uint64_t drop_requests;    /* drop requests this thread made of a holder */
	uint64_t forced_switches;  /* times this thread waited in a forced switch */
	uint64_t takes_abandoned;  /* left take_gil without the GIL (must-exit) */
	uint64_t gils[REPLAY_MAX_GILS / 64]; /* bit i: acquired GIL i (a subinterpreter's
	                              own GIL tells which interpreter it ran in) */
	enum thread_end exit;
	bool exit_held_gil;
	uint64_t exit_ns;
	bool drop_pending;         /* a drop request not counted yet */
	size_t held_in_epoch, waited_in_epoch; /* while building: 1 + the last epoch
	                              whose held/waited list has it, 0 none */
};

struct model_gil {
	bool seen;
	uint64_t base;
	bool in_runtime;
	uint64_t held_ns, idle_ns;
	uint64_t lost_ns;          /* time whose state the trace does not know */
	uint64_t acquisitions;
	uint64_t acquisitions_missing; /* switch numbers skipped between kept
	                                  acquisitions: at least this many are lost */
	uint64_t gaps;             /* places where its events are missing */
	/* free-threaded builds (replay_gil's): whether and when it was on */
	bool enabled_seen;
	uint64_t enabled_at_end;   /* its `enabled` count last recorded */
	uint64_t enabled_times;    /* times enabled transiently */
	uint64_t enabled_for_good_ns; /* UINT64_MAX never */
	int enabled_for_good_by;   /* the thread whose import enabled it for good, -1 */
	uint64_t enabled_for_good_module; /* the module it had loaded (load address), 0 */
};

/* A finalization epoch (replay.h) with the threads (indices, ascending)
 * alive at its start and, but its finalizing thread, those that held or
 * waited for the GIL after it began and before the next one began (the
 * last: to the end of the trace). */
struct model_epoch {
	struct replay_epoch epoch;
	int *alive, *held, *waited;
	size_t alive_count, held_count, waited_count;
};

struct model_handoff_pair {
	int from, to;              /* thread indices */
	uint64_t count;
};

/* A test the program marked (giltrace_test_mark: the pytest plugin). */
struct model_test {
	const char *id;            /* the trace's label: "tests/test_x.py::test_a";
	                              NULL when its name was not kept (a full log) */
	uint64_t number;           /* 1.. as giltrace_test_mark() returned it */
	int thread;                /* that marked it */
	uint64_t begin_ns, end_ns; /* end UINT64_MAX: not marked as ended */
};

enum model_test_when {
	MODEL_TEST_NONE,           /* the trace has no test marks */
	MODEL_TEST_BEFORE_FIRST,   /* before the first test began (collection) */
	MODEL_TEST_DURING,         /* while the test ran */
	MODEL_TEST_BETWEEN,        /* after it ended, before the next began */
	MODEL_TEST_AFTER_LAST,     /* after the last test ended: at exit */
};

struct model {
	struct trace *trace;           /* walked again by the views (spans.h) */
	struct model_test *tests;      /* in time order */
	size_t test_count;
	struct model_thread *threads;
	size_t thread_count;
	struct model_gil gils[REPLAY_MAX_GILS];
	uint64_t wall_ns;

	uint64_t acquisitions, contended_acquisitions;
	uint64_t blocks;           /* parking-lot waits, every thread's */
	uint64_t handoff_count;
	struct latencies handoff_latencies;
	uint64_t latency_p50, latency_p90, latency_p99, latency_max;
	struct model_handoff_pair *pairs;
	size_t pair_count;
	uint32_t *pair_index;      /* while building, with few threads: 1 + the
	                              index in pairs of (from, to) at
	                              from * thread_count + to, 0 none yet */

	/* Lost events, summed over the GILs (see model_gil) */
	uint64_t lost_ns;
	uint64_t acquisitions_missing;
	uint64_t gil_gaps;
	uint64_t handoffs_not_counted; /* acquisitions by another thread than the
	                                  last releaser, across a gap */
	/* the first finalization epoch (replay.h), or, if none, the first
	 * Py_FinalizeEx call */
	struct {
		bool seen;
		uint64_t start_ns;
		int finalizing_thread;  /* thread index, -1 unknown */
		bool enter_seen, exit_seen;
		uint64_t enter_ns, exit_ns;
	} finalization;
	struct model_epoch *epochs;    /* every finalization epoch, in time order */
	size_t epoch_count;

	/* where a view of a window replays from (analysis.h): taken along the
	 * analysis's replay when asked, else empty */
	struct replay_checkpoints checkpoints;

	char **errors;
	size_t error_count;
	bool oom;                  /* building it ran out of memory */
};

/* Returns 0, or -1 when out of memory.  Free with model_free(). */
int model_build(struct model *m, struct trace *t);

/* The model as one visitor of a replay that others share: model_begin()
 * fills *v (its ctx is m); after replay_run(), model_end().  Both return
 * 0, or -1 when out of memory. */
int model_begin(struct model *m, struct trace *t, struct replay_visitor *v);
int model_end(struct model *m, const struct replay *r);
void model_free(struct model *m);

/* A thread's display name: its name (THREAD_NAME), "main" for the main
 * thread, else NULL (callers show the tid). */
const char *model_thread_name(const struct model *m, int thread);

/* The one label of a thread, wherever one is shown (lanes, findings,
 * tooltips): "main (1234)", "worker-1 (1235)", or "1236" without a name;
 * thread >= 0.  Returns buf. */
const char *model_thread_label(const struct model *m, int thread, char *buf, size_t size);
/* A lane's label (timeline, HTML page, export): the thread's label and, in
 * a process with several GILs (subinterpreters with their own), the GILs it
 * took first: "GIL 0,1: main (12)". */
const char *model_lane_label(const struct model *m, int thread, char *buf, size_t size);
/* Where threads go in every list of them (lanes, the report's rows, the
 * export's order): in a process with several GILs, grouped by the GIL each
 * is shown under (model_thread_group), then the main thread first, then
 * by first event.  A qsort_r comparator of thread indices. */
int model_thread_order(const void *a, const void *b, void *model);
/* The test a moment belongs to and how (*when), or NULL (MODEL_TEST_NONE:
 * no marks).  Before the first test: that test, BEFORE_FIRST. */
const struct model_test *model_test_at(const struct model *m, uint64_t ns, enum model_test_when *when);
/* How many GILs the trace saw (several: subinterpreters with their own). */
unsigned model_gils_seen(const struct model *m);
/* The group of a thread in a process with several GILs: the lowest-
 * numbered GIL it took (GIL 0 is the main interpreter's; a subinterpreter
 * with its own GIL is its threads' group), REPLAY_MAX_GILS if none; 0 in a
 * process with one GIL. */
unsigned model_thread_group(const struct model *m, int thread);
/* A group's heading: "GIL 0, the main interpreter's", "GIL 1, a
 * subinterpreter's own", "no GIL taken".  Returns buf. */
const char *model_group_label(const struct model *m, unsigned group, char *buf, size_t size);
/* The same in a sentence: "thread main (1234)", "thread 1236", or "an
 * unknown thread" for -1.  Returns buf. */
const char *model_thread_phrase(const struct model *m, int thread, char *buf, size_t size);

#endif
