/*
 * detect-lock.c: exit-lock-held, a thread that waited during finalization
 * for a PyThread lock whose owner will never release it (bpo-23309,
 * gh-129536: "Fatal Python error: _enter_buffered_busy: could not acquire
 * lock for <_io.BufferedWriter name='<stderr>'> at interpreter shutdown,
 * possibly due to daemon threads").
 *
 * The shim records a wait on a PyThread lock only while finalizing and
 * only when the lock could not be taken at once (LOCK_WAIT_BEGIN with the
 * owner's tid, LOCK_WAIT_END with how it ended), and the locks a thread
 * still owns when it ends, parks or crashes (LOCK_HELD).  A wait that ends
 * with the lock acquired is the normal path: its owner released it.  A
 * wait that timed out (the finalizing thread's 1 s grace in
 * _enter_buffered_busy, followed by Py_FatalError and SIGABRT: the
 * crash-at-exit finding), or that was still open when the trace ended (the
 * process hung in it: exit-hang, or it died), is a finding, made at the
 * end of the walk so that it can say what became of the owner: ended by
 * CPython holding the lock (pthread_exit at a must-exit check), parked
 * holding it (pause), crashed holding it, or still running.  One finding
 * per waiting thread and lock: Py_FatalError flushes the std streams again
 * and waits a second time for the same lock.
 *
 * What it cannot see (docs/findings.md): locks that are not POSIX
 * semaphores, which is every PyThread lock of CPython 3.14+ (PyMutex).
 */
#include "detect-walk.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

/* A wait, from its begin to its end (or the trace's end). */
struct lock_wait {
	int thread;
	uint64_t lock;
	int32_t owner;               /* tid at the wait's begin, 0 unknown */
	bool timed;
	uint64_t timeout_us;
	uint64_t begin_ns, end_ns;
	size_t begin_event;
	bool open;                   /* no end yet (an interrupted wait goes on) */
	unsigned end;                /* enum gtr_lock_wait_end, 0 while open */
	unsigned times;              /* waits of this thread for this lock that failed */
};

/* A LOCK_HELD: thread ended (parked, crashed) owning lock. */
struct lock_held {
	int thread;
	uint64_t lock;
	unsigned at;                 /* enum gtr_lock_held_at */
	uint64_t ns;
};

struct lock_watch {
	struct lock_wait *waits;
	size_t wait_count, wait_cap;
	struct lock_held *held;
	size_t held_count, held_cap;
};

static bool grow(void **items, size_t *cap, size_t count, size_t size)
{
	if (count < *cap)
		return true;
	size_t n = *cap ? *cap * 2 : 8;
	void *p = realloc(*items, n * size);
	if (!p)
		return false;
	*items = p;
	*cap = n;
	return true;
}

static struct lock_watch *watch_of(struct walk *w)
{
	if (!w->locks && !(w->locks = calloc(1, sizeof *w->locks)))
		w->oom = true;
	return w->locks;
}

/* The wait of thread for lock: its open one, else its failed one. */
static struct lock_wait *wait_of(struct lock_watch *lw, int thread, uint64_t lock)
{
	for (size_t i = lw->wait_count; i-- > 0;)
		if (lw->waits[i].thread == thread && lw->waits[i].lock == lock)
			return &lw->waits[i];
	return NULL;
}

void detect_lock_event(struct walk *w, int thread, const struct trace_event *e)
{
	struct lock_watch *lw = watch_of(w);
	if (!lw)
		return;
	uint64_t lock = e->payload[0];
	struct lock_wait *x = wait_of(lw, thread, lock);
	switch (e->type) {
	case GTR_EV_LOCK_WAIT_BEGIN:
		if (x && x->open)
			return; /* after an interrupted wait: the same wait goes on */
		if (x && x->end != GTR_LOCK_ACQUIRED) {
			x->open = true; /* another try for a lock it already failed to get */
			return;
		}
		if (!grow((void **)&lw->waits, &lw->wait_cap, lw->wait_count, sizeof *lw->waits)) {
			w->oom = true;
			return;
		}
		x = &lw->waits[lw->wait_count++];
		*x = (struct lock_wait){
			.thread = thread,
			.lock = lock,
			.owner = gtr_lock_wait_owner(e->payload[1]),
			.timed = e->arg != 0,
			.timeout_us = gtr_lock_wait_timeout_us(e->payload[1]),
			.begin_ns = e->ns,
			.begin_event = w->at,
			.open = true,
		};
		break;
	case GTR_EV_LOCK_WAIT_END:
		if (!x || !x->open || e->arg == GTR_LOCK_INTERRUPTED)
			return;
		x->open = false;
		if (x->end && x->end != GTR_LOCK_ACQUIRED) {
			if (e->arg != GTR_LOCK_ACQUIRED)
				x->times++;
			return; /* the first failure is the finding's */
		}
		x->end = e->arg;
		x->end_ns = e->ns;
		x->times = e->arg != GTR_LOCK_ACQUIRED;
		break;
	case GTR_EV_LOCK_HELD:
		if (!grow((void **)&lw->held, &lw->held_cap, lw->held_count, sizeof *lw->held)) {
			w->oom = true;
			return;
		}
		lw->held[lw->held_count++] = (struct lock_held){ thread, lock, e->arg, e->ns };
		break;
	default:
		break;
	}
}

/* What became of the owner of x's lock: "which CPython ended at +318 ms
 * holding it (pthread_exit at a must-exit check)", ... */
static void describe_owner(const struct walk *w, const struct lock_wait *x, int owner, char *buf, size_t size)
{
	const struct lock_watch *lw = w->locks;
	const struct lock_held *held = NULL;
	for (size_t i = 0; i < lw->held_count && !held; i++)
		if (lw->held[i].lock == x->lock && lw->held[i].thread == owner)
			held = &lw->held[i];
	char t[32];
	const struct replay_thread *rt = &w->r->threads[owner];
	if (!held) {
		snprintf(buf, size, "%s", rt->exit == THREAD_END_NONE ? "which was still running"
		                                                      : "which never released it");
		return;
	}
	format_duration(t, sizeof t, held->ns);
	bool fin = false;
	const struct replay *r = w->r;
	for (size_t i = 0; i < r->epoch_count; i++)
		if (held->ns >= r->epochs[i].start_ns)
			fin = true;
	switch (held->at) {
	case GTR_LOCK_HELD_AT_PARK:
		snprintf(buf, size, "which CPython parked at +%s holding it (pause()%s)", t,
		         fin ? " at a must-exit check" : "");
		break;
	case GTR_LOCK_HELD_AT_CRASH:
		snprintf(buf, size, "which crashed at +%s holding it", t);
		break;
	default:
		if (rt->exit == THREAD_END_PTHREAD_EXIT)
			snprintf(buf, size, "which %s at +%s holding it (pthread_exit%s)",
			         fin ? "CPython ended" : "ended", t, fin ? " at a must-exit check" : "");
		else
			snprintf(buf, size, "which ended at +%s holding it (its start routine returned)", t);
		break;
	}
}

static void lock_finding(struct walk *w, const struct lock_wait *x)
{
	bool at_end = x->open && !x->end;
	uint64_t ns = at_end ? x->begin_ns : x->end_ns;
	struct finding *f = walk_add_finding(w, DETECT_EXIT_LOCK_HELD, x->thread, ns);
	if (!f)
		return;
	int owner = x->owner ? walk_thread_of_tid(w, x->owner, x->begin_ns) : -1;
	f->other_thread = owner;
	f->lock = x->lock;
	f->stack_event = walk_with_stack(w, x->begin_event, SIZE_MAX);
	char waited[96], label[64], fate[160], again[48] = "";
	char d[32];
	if (at_end)
		snprintf(waited, sizeof waited, "waited from +%s to the end of the trace, %s,",
		         format_duration(d, sizeof d, x->begin_ns), w->t->snapshot ? "where giltrace ended the hung process"
		                                                                   : "where the process died");
	else
		snprintf(waited, sizeof waited, "waited %s%s",
		         format_duration(d, sizeof d, x->end_ns - x->begin_ns),
		         x->end == GTR_LOCK_TIMED_OUT ? " (its timeout)" : " and failed");
	if (owner >= 0) {
		walk_thread_label(w, owner, label, sizeof label);
		describe_owner(w, x, owner, fate, sizeof fate);
	} else {
		snprintf(label, sizeof label, "%s", x->owner ? "a thread not in the trace" : "a thread giltrace did not see take it");
		fate[0] = '\0';
	}
	if (x->times > 1)
		snprintf(again, sizeof again, " (%u waits, none got it)", x->times);
	const struct replay_epoch *ep = replay_last_epoch(w->r);
	bool finalizer = ep && replay_epoch_thread(ep) == x->thread;
	int n = snprintf(f->what, sizeof f->what,
	                 "%s%s for lock 0x%" PRIx64 "%s, held by %s%s%s; the bpo-23309 / gh-129536 shape "
	                 "(\"could not acquire lock for ... at interpreter shutdown, possibly due to daemon threads\")",
	                 finalizer ? "(the finalizing thread) " : "", waited, x->lock, again, label,
	                 fate[0] ? ", " : "", fate);
	if (n >= (int)sizeof f->what)
		f->what[sizeof f->what - 1] = '\0'; /* a thread name at its longest: the end of the sentence goes */
}

void detect_lock_end(struct walk *w)
{
	struct lock_watch *lw = w->locks;
	if (!lw)
		return;
	for (size_t i = 0; i < lw->wait_count; i++) {
		const struct lock_wait *x = &lw->waits[i];
		bool failed = x->end && x->end != GTR_LOCK_ACQUIRED;
		/* still waiting when the trace ended: only a hang or a death
		 * says the wait would not have ended */
		bool never_ended = x->open && !x->end && (w->t->truncated || w->t->snapshot);
		if (failed || never_ended)
			lock_finding(w, x);
	}
}

bool detect_lock_waiting_at_end(const struct walk *w, int thread, char *buf, size_t size)
{
	const struct lock_watch *lw = w->locks;
	for (size_t i = lw ? lw->wait_count : 0; i-- > 0;) {
		const struct lock_wait *x = &lw->waits[i];
		if (x->thread != thread || !x->open || x->end)
			continue;
		int owner = x->owner ? walk_thread_of_tid(w, x->owner, x->begin_ns) : -1;
		char label[64], fate[160] = "", d[32];
		if (owner >= 0) {
			walk_thread_label(w, owner, label, sizeof label);
			describe_owner(w, x, owner, fate, sizeof fate);
		} else {
			snprintf(label, sizeof label, "a thread giltrace did not see take it");
		}
		snprintf(buf, size, "waits since +%s for lock 0x%" PRIx64 ", held by %s%s%s",
		         format_duration(d, sizeof d, x->begin_ns), x->lock, label, fate[0] ? ", " : "", fate);
		return true;
	}
	return false;
}

void detect_lock_free(struct walk *w)
{
	if (!w->locks)
		return;
	free(w->locks->waits);
	free(w->locks->held);
	free(w->locks);
	w->locks = NULL;
}
