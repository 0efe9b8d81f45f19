/*
 * detect-hang.c: exit-hang, from a trace whose process giltrace ended for
 * outliving --timeout or --exit-timeout (it has a hang snapshot:
 * tools/read/snapshot.h).
 *
 * The trace ends where the process stopped making progress, so what is
 * still open at its end is what the process was stuck in: the replay
 * closes every hold and wait still open at the end of the trace (with
 * r->at SIZE_MAX, which tells them from a release that was the trace's
 * last event).  From them and the detectors' own state:
 *
 * - who holds each GIL, and whether it took it after finalization began;
 * - who waits for it (inside take_gil);
 * - who waits on switch_cond for whom: a forced switch (drop_gil after a
 *   drop request) still pending; if the thread that asked has exited or
 *   parked, nothing will ever take the GIL and end the wait: the gh-96387
 *   shape (3.9, 3.10.0-3.10.7, 3.11.0: a thread ended by the must-exit
 *   check in take_gil leaves its drop request set);
 * - the finalizing thread waiting for the GIL that a thread took after
 *   finalization began and keeps: the bpo-36469 shape (a daemon thread
 *   taking the GIL during finalization, the finalizing thread blocked);
 * - the threads CPython ended (pthread_exit) or parked (pause) meanwhile.
 *
 * Every thread of the snapshot gets a role from this; the renderer puts
 * each role above that thread's stack.  Without a snapshot (a trace copied
 * without it, a process killed by someone else) there is no finding: a
 * trace that stops is not a hang by itself (switch-wait-on-dead-thread
 * still says what it can).
 */
#include "detect-walk.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "snapshot.h"

/* Ended threads listed besides the snapshot's (the most recent). */
#define MAX_ENDED_ROLES 32

static void on_hold(void *ctx, const struct replay *r, int thread, unsigned gil, uint64_t start, uint64_t end)
{
	(void)end;
	struct hang_open *h = &((struct walk *)ctx)->hang[thread];
	h->held = true;
	h->hold_open = r->at == SIZE_MAX; /* closed by the end, not a release */
	h->gil = gil;
	h->hold_since = start;
}

static void on_wait(void *ctx, const struct replay *r, int thread, uint64_t start, uint64_t end, bool known)
{
	(void)end;
	(void)known;
	struct hang_open *h = &((struct walk *)ctx)->hang[thread];
	h->waited = true;
	h->wait_open = r->at == SIZE_MAX;
	h->wait_since = start;
}

static void on_blocked(void *ctx, const struct replay *r, int thread, uint64_t start, uint64_t end)
{
	(void)end;
	struct hang_open *h = &((struct walk *)ctx)->hang[thread];
	h->blocked_open = r->at == SIZE_MAX;
	h->blocked_since = start;
}

int detect_hang_begin(struct walk *w, struct replay_visitor *v)
{
	w->hang = calloc(w->t->thread_count ? w->t->thread_count : 1, sizeof *w->hang);
	if (!w->hang)
		return -1;
	v->hold = on_hold;
	v->wait = on_wait;
	v->blocked = on_blocked;
	return 0;
}

/* What the end of the trace says (see the note above). */
struct hang_view {
	uint64_t end;
	bool finalizing;             /* finalization under way at the end */
	uint64_t began_ns;           /* since: its epoch's start, or the
	                                Py_FinalizeEx call whose flag is not
	                                set yet (atexit hooks run first) */
	bool flag_set;               /* began_ns is the finalizing flag's */
	int finalizer;               /* its thread, -1 */
	int holder;                  /* of the first GIL held at the end, -1 */
	unsigned waiting;            /* threads in take_gil at the end */
	int switch_waiter, switch_for; /* a pending forced switch, -1 */
	bool switch_for_ended;
};

static bool holds_at_end(const struct walk *w, int i)
{
	return w->hang[i].held && w->hang[i].hold_open;
}

static bool waits_at_end(const struct walk *w, int i)
{
	return w->hang[i].waited && w->hang[i].wait_open;
}

static bool ended_by(const struct replay *r, int i, uint64_t end)
{
	const struct replay_thread *th = &r->threads[i];
	return th->exit != THREAD_END_NONE && th->exit != THREAD_END_PROCESS && th->exit_ns <= end;
}

static void view_of(const struct walk *w, struct hang_view *v)
{
	const struct replay *r = w->r;
	*v = (struct hang_view){ .end = r->end_ns, .finalizer = -1, .holder = -1, .switch_waiter = -1,
		                 .switch_for = -1 };
	const struct replay_epoch *ep = replay_open_epoch(r);
	if (ep) {
		v->finalizing = v->flag_set = true;
		v->finalizer = replay_epoch_thread(ep);
		v->began_ns = ep->start_ns;
	} else if (r->finalize_call.seen && !r->finalize_call.returned) {
		v->finalizing = true;
		v->finalizer = r->finalize_call.caller;
		v->began_ns = r->finalize_call.call_ns;
	}
	for (size_t i = 0; i < r->thread_count; i++) {
		if (holds_at_end(w, (int)i) && v->holder < 0)
			v->holder = (int)i;
		if (waits_at_end(w, (int)i))
			v->waiting++;
	}
	for (unsigned gi = 0; gi < REPLAY_MAX_GILS; gi++) {
		const struct forced_switch *fs = &w->forced_switch[gi];
		if (!fs->pending || fs->thread < 0)
			continue;
		bool dead = fs->requester >= 0 && ended_by(r, fs->requester, v->end);
		if (v->switch_waiter < 0 || (dead && !v->switch_for_ended)) {
			v->switch_waiter = fs->thread;
			v->switch_for = fs->requester;
			v->switch_for_ended = dead;
		}
	}
}

/* "+1.234 s" (and ", 12.0 ms after finalization began") */
static const char *when(const struct hang_view *v, uint64_t ns, char *buf, size_t size)
{
	char d[32], e[32];
	format_duration(d, sizeof d, ns);
	if (v->finalizing && ns > v->began_ns)
		snprintf(buf, size, "+%s (%s after finalization began)", d,
		         format_duration(e, sizeof e, ns - v->began_ns));
	else
		snprintf(buf, size, "+%s", d);
	return buf;
}

static const char *label(const struct walk *w, int i, char *buf, size_t size)
{
	const struct trace_thread *th = &w->t->threads[i];
	if (th->name[0])
		snprintf(buf, size, "thread %d (%s)", th->tid, th->name);
	else
		snprintf(buf, size, "thread %d", th->tid);
	return buf;
}

/* Append "; text" (or text first) to a role. */
static void add_part(char *role, size_t size, const char *text)
{
	size_t n = strlen(role);
	if (n < size)
		snprintf(role + n, size - n, "%s%s", n ? "; " : "", text);
}

static void role_of(const struct walk *w, const struct hang_view *v, int i, char *role, size_t size)
{
	const struct replay_thread *th = &w->r->threads[i];
	const struct hang_open *h = &w->hang[i];
	char part[192], a[96], b[64];
	role[0] = '\0';
	if (i == v->finalizer)
		add_part(role, size, "finalizes the interpreter");
	if (holds_at_end(w, i)) {
		snprintf(part, sizeof part, "holds the GIL since %s", when(v, h->hold_since, a, sizeof a));
		add_part(role, size, part);
	}
	if (i == v->switch_waiter) {
		snprintf(part, sizeof part, "released the GIL and waits on switch_cond for %s to take it",
		         v->switch_for >= 0 ? label(w, v->switch_for, b, sizeof b) : "another thread");
		add_part(role, size, part);
	}
	if (waits_at_end(w, i)) {
		snprintf(part, sizeof part, "waits for the GIL (in take_gil) since %s", when(v, h->wait_since, a, sizeof a));
		add_part(role, size, part);
	}
	if (detect_lock_waiting_at_end(w, i, part, sizeof part))
		add_part(role, size, part); /* bpo-23309's lock, without a timeout */
	if (h->blocked_open) { /* 3.13+: a PyMutex, a stop-the-world, a join */
		snprintf(part, sizeof part, "is blocked in the parking lot since %s", when(v, h->blocked_since, a, sizeof a));
		add_part(role, size, part);
	}
	if (ended_by(w->r, i, v->end)) {
		const char *how = th->exit == THREAD_END_PARKED        ? "was parked by CPython (pause)"
		                  : th->exit == THREAD_END_PTHREAD_EXIT ? "was ended by CPython (pthread_exit)"
		                                                        : "ended (its start routine returned)";
		snprintf(part, sizeof part, "%s at %s", how, when(v, th->exit_ns, a, sizeof a));
		add_part(role, size, part);
		if (i == v->switch_for)
			add_part(role, size, "its drop request is still pending");
	}
	if (!role[0])
		add_part(role, size, "runs without the GIL");
}

static bool add_role(struct finding *x, int32_t tid, int thread, const char *role)
{
	struct finding_role *grown = realloc(x->roles, (x->role_count + 1) * sizeof *grown);
	if (!grown)
		return false;
	x->roles = grown;
	struct finding_role *fr = &x->roles[x->role_count++];
	fr->tid = tid;
	fr->thread = thread;
	snprintf(fr->role, sizeof fr->role, "%s", role);
	return true;
}

/* The trace thread of a tid, -1 (the latest, if the tid was reused). */
static int thread_of_tid(const struct walk *w, int32_t tid)
{
	for (size_t i = w->t->thread_count; i-- > 0;)
		if (w->t->threads[i].tid == tid)
			return (int)i;
	return -1;
}

/* Every snapshot thread, then the threads that ended during the
 * finalization (or the one the switch waits for). */
static bool add_roles(struct walk *w, const struct hang_view *v, struct finding *x)
{
	const struct snapshot *s = w->t->snapshot;
	char role[sizeof ((struct finding_role *)0)->role];
	for (size_t k = 0; k < s->thread_count; k++) {
		int i = thread_of_tid(w, s->threads[k].tid);
		if (i >= 0 && ended_by(w->r, i, v->end))
			i = -1; /* a reused tid: the trace's thread with it is gone */
		if (i >= 0)
			role_of(w, v, i, role, sizeof role);
		else
			snprintf(role, sizeof role, "no GIL event in the trace");
		if (!add_role(x, s->threads[k].tid, i, role))
			return false;
	}
	unsigned ended = 0;
	for (size_t i = w->r->thread_count; i-- > 0 && ended < MAX_ENDED_ROLES;) {
		const struct replay_thread *th = &w->r->threads[i];
		bool relevant = (int)i == v->switch_for ||
		                (v->finalizing && ended_by(w->r, (int)i, v->end) && th->exit_ns >= v->began_ns);
		if (!relevant || !ended_by(w->r, (int)i, v->end))
			continue;
		role_of(w, v, (int)i, role, sizeof role);
		if (!add_role(x, w->t->threads[i].tid, (int)i, role))
			return false;
		ended++;
	}
	return true;
}

/* The GIL in a few words: "the GIL is held by thread 12; 2 threads wait for it". */
static void gil_summary(const struct walk *w, const struct hang_view *v, char *buf, size_t size)
{
	char a[96];
	if (v->holder >= 0)
		snprintf(buf, size, "the GIL is held by %s", label(w, v->holder, a, sizeof a));
	else
		snprintf(buf, size, "no thread holds the GIL");
	size_t n = strlen(buf);
	if (v->waiting)
		snprintf(buf + n, size - n, "; %u thread%s wait%s for it", v->waiting, v->waiting == 1 ? "" : "s",
		         v->waiting == 1 ? "s" : "");
}

void detect_hang(struct walk *w)
{
	const struct snapshot *s = w->t->snapshot;
	if (!s || !w->t->thread_count)
		return;
	struct hang_view v;
	view_of(w, &v);
	char limit[96], gil[160], a[96], b[96], d[32];
	format_duration(d, sizeof d, s->limit_ns);
	/* the limit that made run or stress take the snapshot */
	if (s->reason == SNAPSHOT_FINALIZATION)
		snprintf(limit, sizeof limit, "had not exited %s after finalization began (--exit-timeout)", d);
	else
		snprintf(limit, sizeof limit, "outlived --timeout %s", d);
	gil_summary(w, &v, gil, sizeof gil);

	bool gh96387 = v.switch_waiter >= 0 && v.switch_for_ended;
	bool bpo36469 = !gh96387 && v.finalizer >= 0 && v.holder >= 0 && v.holder != v.finalizer &&
	                waits_at_end(w, v.finalizer) && w->hang[v.holder].hold_since >= v.began_ns;
	int thread = gh96387 ? v.switch_waiter : v.finalizer >= 0 ? v.finalizer : v.holder;
	if (thread < 0)
		thread = thread_of_tid(w, w->t->header.pid);
	if (thread < 0)
		thread = 0;
	struct finding *x = walk_add_finding(w, DETECT_EXIT_HANG, thread, v.end);
	if (!x)
		return;
	walk_with_tstate(w, x, w->threads[thread].tstate);
	if (gh96387) {
		x->other_thread = v.switch_for;
		snprintf(x->what, sizeof x->what,
		         "released the GIL and waits on switch_cond for %s, which %s and will never take it: "
		         "its drop request is still pending; the gh-96387 shape (3.9, 3.10.0-3.10.7, 3.11.0: a thread "
		         "ended in take_gil leaves its drop request set); the process %s",
		         label(w, v.switch_for, a, sizeof a),
		         w->r->threads[v.switch_for].exit == THREAD_END_PARKED ? "is parked" : "has exited", limit);
	} else if (bpo36469) {
		x->other_thread = v.holder;
		snprintf(x->what, sizeof x->what,
		         "finalizes and waits for the GIL, which %s took after finalization began%s and keeps: the "
		         "bpo-36469 shape (a thread taking the GIL during finalization, the finalizing thread "
		         "blocked); the process %s",
		         label(w, v.holder, a, sizeof a),
		         v.flag_set ? "" : ", before the finalizing flag (no must-exit check then),", limit);
	} else if (v.finalizing) {
		snprintf(x->what, sizeof x->what,
		         "%s; finalization began at %s%s and the process %s; %s",
		         thread == v.finalizer ? "finalizes the interpreter" : "was the last to hold the GIL",
		         when(&v, v.began_ns, b, sizeof b),
		         v.flag_set ? "" : " (Py_FinalizeEx called, the finalizing flag not set yet)", limit, gil);
	} else {
		snprintf(x->what, sizeof x->what, "%s; the process %s before finalization began; %s",
		         thread == v.holder ? "holds the GIL" : "is the main thread", limit, gil);
	}
	if (!add_roles(w, &v, x))
		w->oom = true;
}
