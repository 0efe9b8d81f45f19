/*
 * replay.h: the one replay of a trace's GIL and finalization.
 *
 * replay_run() walks the merged events once and keeps the state every
 * analysis reads: who holds each GIL and since when, who waits for one
 * (inside take_gil without it), each thread's last thread state and how
 * it ended, and the finalization epochs (an embedding program finalizes
 * and initialises again: each epoch runs from the finalizing flag's
 * being set to its being cleared or a new runtime's initialisation).  It
 * calls visitors for what it derives, in event order: a hold or a wait
 * closed, a GIL's free time, an acquisition, a handoff, a lane interval,
 * a thread's end, an epoch's beginning and end, and every event after
 * the replay applied it, with the replay's state readable from the
 * visitor.  The statistics (model.c), the detectors (detect.c) and the
 * lanes and marks (spans.c) are visitors: none keeps a GIL holder or a
 * finalization state of its own.
 *
 * Lost events (ring mode's overwritten chunks, a cut copy, a full disk)
 * are never papered over: where GIL events may be missing between two
 * kept ones, no handoff is counted across them and the time in between
 * is neither held nor idle but lost.  The replay knows they are missing
 * from the switch number of each acquisition (CPython's take_gil adds one
 * whenever the holder changes, so two kept acquisitions more than one
 * apart had others between them) and from the reader's losses
 * (trace_lost_within) where no switch number answers.
 */
#ifndef GILTRACE_REPLAY_H
#define GILTRACE_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace.h"

/* A GIL event's arg is its index: below this by its 8-bit width. */
#define REPLAY_MAX_GILS 256

/* How a thread ended: what its exit event recorded (the format's enum
 * gtr_exit_how, the same values), or the two ends no exit event records. */
enum thread_end {
	THREAD_END_NONE = 0,                             /* still running at the end of the trace */
	THREAD_END_RETURN = GTR_EXIT_RETURN,             /* start routine returned */
	THREAD_END_PTHREAD_EXIT = GTR_EXIT_PTHREAD_EXIT, /* the must-exit path in 3.8-3.13.7 */
	THREAD_END_PROCESS = GTR_EXIT_PROCESS,           /* it ended the process (exit/_exit) */
	THREAD_END_PARKED,                               /* parked in pause() (GTR_EV_THREAD_PARK:
	                                                    3.13.8+, 3.14) */
};

/* A thread's state in a lane interval. */
enum lane_state {
	LANE_ABSENT = 0,
	LANE_RELEASED,
	LANE_WAITING,
	LANE_HELD,
	LANE_BLOCKED,              /* in the parking lot (BLOCK_BEGIN .. END), without a GIL */
	LANE_STATES
};

struct replay_thread {
	int holding;               /* GIL index held, -1 none */
	uint64_t hold_since;
	bool waiting;              /* inside take_gil without the GIL */
	bool blocked;              /* in the parking lot (BLOCK_BEGIN) */
	uint64_t blocked_since;
	bool attempt_waited;       /* this take_gil waited on the GIL's cond */
	uint64_t wait_since;
	uint64_t last_tstate;      /* tstate of its last acquisition */
	uint64_t last_load, last_load_ns; /* its last dlopen (MODULE_LOAD): the
	                              object's load address, when; 0 none */
	uint64_t first_ns;         /* its first event, UINT64_MAX none yet */
	uint64_t last_event_ns;    /* its latest event replayed so far */
	enum thread_end exit;      /* its latest exit or park */
	bool exit_held_gil;
	uint64_t exit_ns;
	/* its lane (kept when a visitor takes intervals): alive from its first
	 * event to its exit or park (not the process exit: that thread keeps
	 * its lane, and what it holds, to the end of the trace) */
	bool alive, ended;
	enum lane_state lane;
	uint64_t lane_since;
};

struct replay_gil {
	bool seen;                 /* an event of it was replayed */
	int holder;                /* thread index, -1 none */
	uint64_t hold_since;
	uint64_t last_hold_end;    /* when it was last known free (or lost) */
	int last_releaser;         /* thread index, -1; cleared by the next acquisition */
	uint64_t last_release_ns;
	int last_acquirer;         /* thread index of its last acquisition, -1 */
	uint64_t last_switch;      /* switch_number of its last acquisition */
	bool switch_known;         /* last_switch is valid */
	/* free-threaded builds: its `enabled` count (GIL_ENABLED events) */
	bool enabled_seen;         /* one was recorded */
	uint64_t enabled;          /* the last one */
	uint64_t enabled_times;    /* times it went from 0 to a transient count */
	uint64_t enabled_for_good_ns; /* when it was enabled for good, UINT64_MAX never */
	uint64_t disabled_ns;      /* when it last went back to 0 */
	/* who enabled it last (transiently: an import), and the extension
	 * module that thread had just loaded (load address, 0 none: a built-in
	 * module, or no load since the GIL was last disabled); for good: the
	 * same of the import that preceded it, none with PYTHON_GIL=1 */
	int enabled_by, for_good_by; /* thread index, -1 none */
	uint64_t enabled_module, for_good_module;
};

/* One finalization: from the flag's being set to its being cleared or a
 * new runtime's initialisation (then `ended`), else to the end. */
struct replay_epoch {
	uint64_t start_ns;
	size_t start_event;        /* the event that showed the flag set */
	int noticed_by;            /* the thread of that event */
	int finalizing_thread;     /* the thread that finalizes, -1 unknown: the one
	                              whose last acquisition used the thread state
	                              the flag names, else the one that entered
	                              Py_FinalizeEx, else a GIL holder */
	bool enter_seen, exit_seen; /* Py_FinalizeEx entered, returned */
	uint64_t enter_ns, exit_ns;
	bool ended;
	uint64_t end_ns;
};

struct replay;

/* The bit of an event type in replay_visitor.events. */
#define REPLAY_EVENT(type) (UINT64_C(1) << (type))
#define REPLAY_ALL_EVENTS UINT64_MAX
_Static_assert(GTR_EV_COUNT <= 64, "an event type's bit fits replay_visitor.events");

/* Callbacks, each optional.  `r` is the replay's state at that moment. */
struct replay_visitor {
	void *ctx;
	/* every event of the types in `events` (REPLAY_EVENT(type) bits), and
	 * of those in `events_after_finalization` once an epoch has begun,
	 * after the replay applied it; r->at is its index */
	void (*event)(void *ctx, const struct replay *r, const struct trace_event *e);
	uint64_t events, events_after_finalization;
	/* thread held GIL gil during [start, end) */
	void (*hold)(void *ctx, const struct replay *r, int thread, unsigned gil, uint64_t start, uint64_t end);
	/* thread was blocked in the parking lot during [start, end) */
	void (*blocked)(void *ctx, const struct replay *r, int thread, uint64_t start, uint64_t end);
	/* thread waited (was inside take_gil without the GIL) during [start,
	 * end); not `known` when its own events may be missing inside */
	void (*wait)(void *ctx, const struct replay *r, int thread, uint64_t start, uint64_t end, bool known);
	/* GIL gil was free during [start, end), or in a state the trace does
	 * not know (`lost`: its events may be missing there) */
	void (*unheld)(void *ctx, const struct replay *r, unsigned gil, uint64_t start, uint64_t end, bool lost);
	/* GIL events of gil may be missing before the acquisition e; at least
	 * `missing` acquisitions were (from the switch numbers) */
	void (*gap)(void *ctx, const struct replay *r, unsigned gil, uint64_t missing);
	/* thread acquired GIL e->arg (e: the ACQUIRE); `waited`: on the cond */
	void (*acquire)(void *ctx, const struct replay *r, int thread, const struct trace_event *e, bool waited);
	/* `from` released gil at released_ns and `to` acquired it next */
	void (*handoff)(void *ctx, const struct replay *r, unsigned gil, int from, uint64_t released_ns, int to,
	                uint64_t acquired_ns);
	/* the same across a gap: not a handoff anyone can time */
	void (*handoff_lost)(void *ctx, const struct replay *r, unsigned gil, int from, int to);
	/* thread's lane was in state during [start, end), start < end, per
	 * thread in time order */
	void (*interval)(void *ctx, const struct replay *r, int thread, enum lane_state state, uint64_t start,
	                 uint64_t end);
	/* the thread exited (not the process exit) or parked: event e */
	void (*thread_end)(void *ctx, const struct replay *r, int thread, const struct trace_event *e);
	/* r->epochs[epoch] began, or ended */
	void (*epoch_begin)(void *ctx, const struct replay *r, size_t epoch);
	void (*epoch_end)(void *ctx, const struct replay *r, size_t epoch);
	/* the trace ended: every hold, wait and lane is closed */
	void (*finish)(void *ctx, const struct replay *r);
};

struct replay {
	const struct trace *trace;
	struct replay_thread *threads; /* per trace thread */
	size_t thread_count;
	struct replay_gil gils[REPLAY_MAX_GILS];
	uint64_t end_ns;           /* the trace's end (known at `finish`): holds
	                              still open end here */
	size_t at;                 /* index of the event being replayed; SIZE_MAX
	                              at the end, where what was still open
	                              closes (hold, wait) */

	struct replay_epoch *epochs; /* in time order */
	size_t epoch_count;
	bool finalizing;           /* the last epoch is open */
	/* a Py_FinalizeEx call not yet part of an epoch (its flag not seen yet) */
	struct replay_finalize_call {
		bool seen, returned;
		int caller;
		uint64_t call_ns, return_ns;
	} finalize_call;

	/* contradictions in the trace itself (a bug of giltrace's): "GIL 0
	 * acquired by thread 12 while thread 13 held it" */
	char **errors;
	size_t error_count;

	const struct replay_visitor *const *visitors;
	size_t visitor_count;
	bool lanes;                /* a visitor takes intervals */
	struct {                   /* a visitor has this callback */
		bool hold, wait, blocked, unheld, gap, acquire, handoff, handoff_lost, interval, thread_end, epoch_begin,
		        epoch_end, finish;
	} has;
	bool oom;
};

/* Replay t for the visitors, in order: one walk of the trace (its first
 * completes it: trace.h).  Returns 0, or -1 when out of memory; r stays
 * readable until replay_free(). */
int replay_run(struct replay *r, struct trace *t, const struct replay_visitor *const *visitors, size_t count);

/* Places to start a replay again from (replay-checkpoint.c): taken along
 * one replay, in memory bounded whatever the trace's length. */
struct replay_checkpoint;
struct replay_checkpoints {
	struct replay_checkpoint *items; /* in time order */
	size_t count, max;
	uint64_t every;            /* events between two */
};
void replay_checkpoints_free(struct replay_checkpoints *cps);

struct replay_options {
	/* take checkpoints along this replay into *take, the first after
	 * take_every events (0: 2^20) */
	struct replay_checkpoints *take;
	uint64_t take_every;
	/* start from the latest of `resume` whose last event is before
	 * resume_before_ns (from the beginning if none): the visitors see
	 * everything from there on, so everything from resume_before_ns on
	 * is complete; what began earlier may be missing, except intervals
	 * still open then, which come whole */
	const struct replay_checkpoints *resume;
	uint64_t resume_before_ns;
};

/* replay_run() with options (opt may be NULL). */
int replay_run_with(struct replay *r, struct trace *t, const struct replay_visitor *const *visitors, size_t count,
                    const struct replay_options *opt);
void replay_free(struct replay *r);

/* "return", "pthread_exit", "process_exit", "parked", or NULL for
 * THREAD_END_NONE. */
const char *thread_end_name(enum thread_end end);

/* The epoch under way at the event being replayed, or NULL: the last one,
 * if still open. */
static inline const struct replay_epoch *replay_open_epoch(const struct replay *r)
{
	return r->finalizing ? &r->epochs[r->epoch_count - 1] : NULL;
}

/* The latest epoch begun, or NULL. */
static inline const struct replay_epoch *replay_last_epoch(const struct replay *r)
{
	return r->epoch_count ? &r->epochs[r->epoch_count - 1] : NULL;
}

/* The thread an epoch's finalization belongs to: its finalizing thread,
 * else the one that noticed the flag. */
int replay_epoch_thread(const struct replay_epoch *ep);

#endif
