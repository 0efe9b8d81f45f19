/*
 * detect.h: findings, from a replayed trace.
 *
 * Each detector has a stable id, a severity and a paragraph in
 * docs/findings.md.  The detectors are a visitor of the replay (replay.h):
 * they read who holds which GIL and which finalization epoch is under way
 * from it, and keep only what they watch (thread-state lives, each
 * thread's doings once finalization began).  Findings come in time order.
 * A crash event (a fatal signal the shim recorded) is a finding of its
 * own unless the thread ran on after it (its handler recovered).
 */
#ifndef GILTRACE_DETECT_H
#define GILTRACE_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum severity { SEVERITY_NOTE, SEVERITY_ERROR };

enum detector {
	DETECT_FREED_TSTATE_USE,
	DETECT_GIL_AFTER_FINALIZE,
	DETECT_EXIT_HOLDING_GIL,
	DETECT_GILSTATE_AFTER_FINALIZE,
	DETECT_SWITCH_WAIT_ON_DEAD_THREAD,
	DETECT_EXIT_IN_TAKE_GIL,
	DETECT_PARKED_AT_EXIT,
	DETECT_CRASH_AT_EXIT,
	DETECT_CRASH,
	DETECT_EXIT_HANG,
	DETECT_EXIT_LOCK_HELD,
	DETECT_GILSTATE_WRONG_INTERPRETER,
	DETECT_GUARD_NEVER_CLOSED,
	DETECT_TSTATE_RELEASE_UNBALANCED,
	DETECT_ENSURE_REFUSED_AT_EXIT,
	DETECT_COUNT
};

struct detector_info {
	const char *id;              /* stable, e.g. "freed-tstate-use" */
	enum severity severity;
	const char *title;           /* one line */
};
extern const struct detector_info detectors[DETECT_COUNT];

/* exit-hang: what one thread was doing when giltrace ended the hung
 * process, from the replay (its stack is in the trace's snapshot). */
struct finding_role {
	int32_t tid;
	int thread;                  /* model thread index, -1: not in the trace */
	char role[320];              /* "holds the GIL since +1.2 s", ... */
};

struct finding {
	enum detector kind;
	int thread;                  /* model thread index */
	uint64_t ns;                 /* when it happened */
	uint64_t tstate;             /* the thread state involved, 0 none */
	unsigned capi;               /* enum gtr_capi of the call involved, 0 none */
	uint64_t caller;             /* return address of that call, 0 unknown */
	bool freed;                  /* tstate had been freed: */
	uint64_t freed_ns;
	int freed_by;                /* thread index, -1 unknown */
	int other_thread;            /* switch-wait: the thread waited for;
	                                exit-lock-held: the lock's owner; -1 */
	uint64_t lock;               /* exit-lock-held: the lock waited for */
	bool finalizing;             /* finalization was under way at ns */
	bool fin_seen;               /* a finalization began before ns: */
	uint64_t fin_start_ns;       /* the latest one's start */
	size_t stack_event;          /* the event whose stack shows the call or the
	                                exit (trace_stack_of), SIZE_MAX none */
	size_t freed_event;          /* the free of tstate, SIZE_MAX none */
	char what[480];              /* what the thread did, one sentence (a crash
	                                at exit: and what the others were doing) */
	struct finding_role *roles;  /* exit-hang: every thread's, NULL otherwise;
	                                freed by findings_free() */
	size_t role_count;
};

struct findings {
	struct finding *items;
	size_t count;
	size_t errors, notes;
};

/* Returns 0, or -1 when out of memory.  Free with findings_free(). */
int detect_run(const struct model *m, struct findings *out);
/* What analyse() keeps besides the model and the findings. */
enum analyse_flags {
	ANALYSE_CHECKPOINTS = 1, /* m->checkpoints, for views of windows */
};

/* model_build() and detect_run() in one replay: 0 or -1 (out of memory);
 * free both either way. */
int analyse(struct trace *t, struct model *m, struct findings *out, unsigned flags);
void findings_free(struct findings *f);

#endif
