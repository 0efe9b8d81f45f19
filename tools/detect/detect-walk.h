/*
 * detect-walk.h: the detectors' state as they walk the replay, shared by
 * detect.c (thread states, watches, the findings) and detect-crash.c
 * (crashes).  Not for the rest of tools/.
 */
#ifndef GILTRACE_DETECT_WALK_H
#define GILTRACE_DETECT_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "detect.h"

/* A finding made at a crash and dropped later (the thread ran on): its
 * kind until detect_end() removes it; never seen outside this file. */
#define DETECT_DROPPED DETECT_COUNT

enum watch { WATCH_NONE, WATCH_ENTERING, WATCH_ACQUIRED, WATCH_RELEASED, WATCH_DONE };

struct tstate_life {
	uint64_t addr;               /* 0: empty slot */
	bool freed;
	uint64_t freed_ns;
	int freed_by;
	size_t freed_event;
};

#define BINDINGS 8

struct thread_state {
	/* the thread states this thread used, and since when (most recent first) */
	uint64_t bound[BINDINGS], bound_ns[BINDINGS];
	enum watch watch;
	uint64_t tstate;             /* the thread state it last acquired with */
	bool freed_own_tstate;       /* freed `tstate` itself since (a normal end) */
	/* what started the watch */
	unsigned capi;
	uint64_t caller, watch_tstate;
	size_t watch_event;
	bool reported_error;
	/* its crash's finding, until the thread records something after it
	 * (then the crash was not fatal), SIZE_MAX none */
	size_t crash_finding;
	int last_gil;                /* the GIL it last acquired, -1 none */
	int32_t parent_tid;          /* from its THREAD_START, 0 none */
	/* started from a subinterpreter (detect-interp.c): that interpreter,
	 * 0 none; the thread that started it and the GIL that one last took */
	uint64_t creator_interp;
	int creator, creator_gil;
	bool interp_reported;
	uint64_t ensure_caller;      /* its last PyGILState_Ensure call: caller, */
	size_t ensure_event;         /* event (SIZE_MAX none) */
	/* PEP 788 (detect-guard.c): successful PyThreadState_Ensure calls not
	 * released yet; its last call's caller and event */
	unsigned tokens_open;
	uint64_t guard_caller;
	size_t guard_event;
};

struct walk {
	const struct trace *t;
	const struct replay *r;      /* the replay visiting us: who holds what,
	                                which finalization is under way */
	struct findings *out;
	size_t at;                   /* index of the event being walked, SIZE_MAX at the end */
	struct tstate_life *lives;   /* open addressing, power-of-two size */
	size_t life_cap, life_count;
	struct thread_state *threads;
	int drop_requester[REPLAY_MAX_GILS];
	struct forced_switch {
		bool pending;
		uint64_t ns;
		int thread, requester;
	} forced_switch[REPLAY_MAX_GILS];
	size_t crashes;              /* crash findings not dropped: the trace says
	                                which thread died, no guess is needed */
	struct hang_open *hang;      /* per thread, when the trace has a hang
	                                snapshot (detect-hang.c), else NULL */
	struct lock_watch *locks;    /* lock waits and owners (detect-lock.c),
	                                NULL until a lock event */
	struct guard_watch *guards;  /* PEP 788's guards (detect-guard.c), NULL
	                                until one is made */
	bool oom;
};

/* A thread's last hold and wait, as the replay closed them: those closed
 * by the trace's end (not by an event, though one may come at the same
 * instant) were still open when giltrace ended the process. */
struct hang_open {
	bool held, hold_open;
	unsigned gil;
	uint64_t hold_since;
	bool waited, wait_open;
	uint64_t wait_since;
	bool blocked_open;           /* in the parking lot at the end, */
	uint64_t blocked_since;      /* since */
};

/* Whether finalization was under way at ns (the replay's open epoch). */
static inline bool finalizing_at(const struct walk *w, uint64_t ns)
{
	const struct replay_epoch *ep = replay_open_epoch(w->r);
	return ep && ns >= ep->start_ns;
}

/* detect.c */
/* The freed thread state at addr, or NULL. */
const struct tstate_life *walk_freed_life(const struct walk *w, uint64_t addr);
/* The freed life of addr if ts used addr before it was freed, else NULL. */
const struct tstate_life *walk_used_after_free(const struct walk *w, const struct thread_state *ts, uint64_t addr);
/* A new finding of kind by thread at ns, or NULL when out of memory. */
struct finding *walk_add_finding(struct walk *w, enum detector kind, int thread, uint64_t ns);
void walk_with_tstate(struct walk *w, struct finding *x, uint64_t tstate);
/* The first of two events (indices, SIZE_MAX none) that has a stack. */
size_t walk_with_stack(const struct walk *w, size_t first, size_t second);
/* The thread with tid that was alive at ns (tids are reused: the latest
 * that began before ns), or -1. */
int walk_thread_of_tid(const struct walk *w, int32_t tid, uint64_t ns);
/* "thread 12 (name)", "thread 10 (main)" or "thread 12". */
void walk_thread_label(const struct walk *w, int thread, char *buf, size_t size);
/* "PyEval_RestoreThread" or "take_gil": what started ts's watch. */
void walk_describe_entry(const struct thread_state *ts, char *buf, size_t size);
/* Whether thread is watched at ns: finalization is under way, it is not
 * the finalizing thread, and its watch is not done. */
bool walk_watched(const struct walk *w, int thread, uint64_t ns);

/* detect-crash.c */
/* A GTR_EV_CRASH of thread: its finding. */
void detect_crash(struct walk *w, int thread, const struct trace_event *e);
/* The thread ran on after its crash: the signal was not fatal. */
void detect_crash_recovered(struct walk *w, struct thread_state *ts);

/* detect-hang.c */
/* Watch the holds and waits (sets w->hang and v's callbacks): 0 or -1. */
int detect_hang_begin(struct walk *w, struct replay_visitor *v);
/* At the end of the trace: the exit-hang finding. */
void detect_hang(struct walk *w);

/* detect-interp.c */
/* A THREAD_INTERP of thread: gilstate-wrong-interpreter. */
void detect_interp_event(struct walk *w, int thread, const struct trace_event *e);

/* detect-guard.c */
/* A C-API call or return of PEP 788's, or of Py_FinalizeEx/Py_Finalize. */
void detect_guard_event(struct walk *w, int thread, const struct trace_event *e);
/* At the end of the trace: guard-never-closed. */
void detect_guard_end(struct walk *w);
void detect_guard_free(struct walk *w);

/* detect-lock.c */
/* A LOCK_WAIT_BEGIN, LOCK_WAIT_END or LOCK_HELD of thread. */
void detect_lock_event(struct walk *w, int thread, const struct trace_event *e);
/* At the end of the trace: the exit-lock-held findings. */
void detect_lock_end(struct walk *w);
/* Whether thread was still waiting for a PyThread lock when the trace
 * ended: then "waits since +T for lock 0x.., held by thread N, which ..."
 * in buf (for exit-hang's roles). */
bool detect_lock_waiting_at_end(const struct walk *w, int thread, char *buf, size_t size);
void detect_lock_free(struct walk *w);

#endif
