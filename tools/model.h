/*
 * model.h: what happened to the GIL, reconstructed from a trace.
 *
 * model_build() replays the merged events through a GIL state machine:
 * who held each GIL and when, who waited, every handoff from a releasing
 * thread to the next acquirer, how each thread ended, and what happened
 * after finalization began.  It checks its own invariants while doing so
 * (no two threads hold one GIL at once; a thread's hold time never exceeds
 * the run's wall time; held + idle + lost == wall for each GIL) and lists
 * any violation in model.errors: a violation is a bug in giltrace, not in
 * the traced program.
 *
 * Lost events (ring mode's overwritten chunks, a cut copy, a full disk)
 * are never papered over: where GIL events may be missing between two
 * kept ones, no handoff is counted across them and the time in between
 * is neither held nor idle but lost.  The model knows they are missing
 * from the switch number of each acquisition (CPython's take_gil adds one
 * whenever the holder changes, so two kept acquisitions more than one
 * apart had others between them) and from the reader's losses
 * (trace_lost_within) where no switch number answers.
 */
#ifndef GILTRACE_MODEL_H
#define GILTRACE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace.h"

#define MODEL_MAX_GILS 256

enum model_exit {
	MODEL_EXIT_NONE = 0,      /* still running at the end of the trace */
	MODEL_EXIT_RETURN,        /* start routine returned */
	MODEL_EXIT_PTHREAD_EXIT,  /* pthread_exit (the must-exit path in 3.8-3.13.7) */
	MODEL_EXIT_PROCESS,       /* this thread ended the process (exit/_exit) */
	MODEL_EXIT_PAUSED,        /* parked in pause() (3.13.8+, 3.14) */
};

struct model_thread {
	const struct trace_thread *info;
	bool is_main;              /* tid == pid */
	bool has_start;            /* THREAD_START seen (created while traced) */
	int32_t parent_tid;
	uint64_t first_ns, last_ns;
	uint64_t hold_ns, wait_ns;
	uint64_t acquisitions, contended_acquisitions;
	uint64_t drop_requests;    /* drop requests this thread made of a holder */
	uint64_t forced_switches;  /* times this thread waited in a forced switch */
	uint64_t takes_abandoned;  /* left take_gil without the GIL (must-exit) */
	enum model_exit exit;
	bool exit_held_gil;
	uint64_t exit_ns;
	/* relative to finalization start (valid if model.finalization.seen) */
	bool alive_at_finalization, held_after_finalization, waited_after_finalization;
	/* replay state */
	int holding;               /* GIL index held, -1 none */
	uint64_t hold_since;
	bool taking, attempt_waited, drop_pending;
	uint64_t take_since;
	uint64_t last_tstate;      /* tstate of its last acquisition */
	uint64_t last_event_ns;    /* its latest event replayed so far */
};

struct model_gil {
	bool seen;
	uint64_t base;
	bool in_runtime;
	int holder;                /* thread index, -1 none */
	uint64_t hold_since;
	uint64_t held_ns, idle_ns, last_hold_end;
	uint64_t lost_ns;          /* time whose state the trace does not know */
	uint64_t acquisitions;
	uint64_t acquisitions_missing; /* switch numbers skipped between kept
	                                  acquisitions: at least this many are lost */
	uint64_t gaps;             /* places where its events are missing */
	int last_releaser;         /* thread index, -1; cleared by the next acquisition */
	uint64_t last_release_ns;
	int last_acquirer;         /* thread index of its last acquisition, -1 */
	uint64_t last_switch;      /* switch_number of its last acquisition */
	bool switch_known;         /* last_switch is valid */
};

struct model_handoff_pair {
	int from, to;              /* thread indices */
	uint64_t count;
};

struct model {
	const struct trace *trace;
	struct model_thread *threads;
	size_t thread_count;
	struct model_gil gils[MODEL_MAX_GILS];
	uint64_t wall_ns;

	uint64_t acquisitions, contended_acquisitions;
	uint64_t handoff_count;
	uint64_t *handoff_latencies; /* in no useful order after model_build */
	uint64_t latency_p50, latency_p90, latency_p99, latency_max;
	struct model_handoff_pair *pairs;
	size_t pair_count;

	/* Lost events, summed over the GILs (see model_gil) */
	uint64_t lost_ns;
	uint64_t acquisitions_missing;
	uint64_t gil_gaps;
	uint64_t handoffs_not_counted; /* acquisitions by another thread than the
	                                  last releaser, across a gap */
	/* indices into trace.events of the acquisitions right after a gap, in
	 * order: spans.c draws no handoff into them either */
	size_t *gap_events;
	size_t gap_event_count;

	struct {
		bool seen;
		uint64_t start_ns;
		int finalizing_thread;  /* thread index, -1 unknown */
		bool enter_seen, exit_seen;
		uint64_t enter_ns, exit_ns;
	} finalization;

	char **errors;
	size_t error_count;
};

/* Returns 0, or -1 when out of memory.  Free with model_free(). */
int model_build(struct model *m, const struct trace *t);
void model_free(struct model *m);

/* A thread's display name: its name (THREAD_NAME), "main" for the main
 * thread, else NULL (callers show the tid). */
const char *model_thread_name(const struct model *m, int thread);

/* "thread 1234 (main)", "thread 1235", or "an unknown thread" for -1;
 * returns buf. */
const char *model_thread_label(const struct model *m, int thread, char *buf, size_t size);

/* "return", "pthread_exit", ... or NULL for MODEL_EXIT_NONE. */
const char *model_exit_name(enum model_exit e);

#endif
