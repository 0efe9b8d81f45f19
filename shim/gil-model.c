/*
 * gil-model.c: recognising CPython's GIL objects and deriving GIL
 * transitions from the pthread calls made on them.
 *
 * Design note (see docs/cpython-internals.md §1-§3).  A GIL is a
 * struct _gil_runtime_state: interval, last_holder, locked, switch_number,
 * then cond (C), mutex (M), switch_cond (SC), switch_mutex (SM).
 * create_gil() initialises M, SM, C, SC in this order and at fixed
 * distances; that signature, seen in one thread's last four init calls,
 * plus the `_PyRuntime` symbol, identifies a GIL on any build (static,
 * shared, stripped).  It is accepted if it lies inside _PyRuntime (the main
 * GIL) or if its `locked` field still holds -1 (a new subinterpreter GIL).
 * Seeing the signature at a known address again (fork child, recreate_gil)
 * means the GIL was re-created: nobody holds it.
 *
 * How the calls map onto take_gil()/drop_gil():
 *   lock(M) by a thread not holding the GIL     take_gil entry: TAKE_BEGIN
 *   timedwait(C) returns ETIMEDOUT, locked and   take_gil sets the holder's
 *     switch_number unchanged                    drop request: DROP_REQUEST
 *   signal(SC) (under M and SM, after locked=1,  the acquisition: ACQUIRE
 *     last_holder=tstate, ++switch_number)       with tstate, switch_number
 *   unlock(M) with locked == 0 by the holder     drop_gil: RELEASE
 *   unlock(M) while taking, no ACQUIRE seen      a must-exit check left
 *                                                take_gil: TAKE_ABANDON
 *   wait(SC)                                     forced switch in drop_gil
 * ACQUIRE and RELEASE are both recorded while M is held.  Their stamps
 * are also made to follow the GIL's own order: rdtsc is not serializing
 * (it may execute before the lock that precedes it) and vCPUs' TSCs may
 * differ by a few ns, so each GIL keeps the last stamp written under M and
 * the next one is always later (a Lamport clock).  Hold intervals of
 * different threads therefore never overlap in the trace.
 *
 * What it cannot see: the first must-exit check of 3.9+ (before take_gil
 * locks M) makes no pthread call at all; it shows only as the exit or the
 * pause() that follows.  Free-threaded builds with the GIL disabled never
 * lock it; whether it is enabled (its `enabled` count) is read where the
 * shim runs anyway, so a change shows at the next GIL take or C-API call,
 * and which module's import enabled it is not seen.  The finalizing flag
 * is sampled at GIL events, so its recorded time is the first GIL event
 * after the flip, not the flip itself.
 */
#include <errno.h>
#include <string.h>

#include "cpython-layout.h"
#include "shim.h"

#define MAX_GILS 64

/* A recognised GIL.  The primitives are found from `cond` by the
 * GIL_*_FROM_COND distances (cpython-layout.h). */
struct gil_object {
	uintptr_t base;            /* struct _gil_runtime_state */
	uintptr_t cond;            /* its cond field, C */
	volatile uintptr_t *last_holder;
	volatile int *locked;
	volatile unsigned long *switch_number;
	volatile int *enabled;     /* free-threaded builds: its `enabled` count, else NULL */
	int enabled_last;          /* the count last recorded, -1 none yet */
	uint64_t last_clock;       /* last ACQUIRE/RELEASE stamp; written under M */
};

/* Recognised GILs; entries are written once, before gil_count publishes
 * them, and never removed. */
static struct gil_object gils[MAX_GILS];
static unsigned gil_count;

/* The address range covering every known GIL; see gil_maybe().  Widened
 * so that it always covers the GILs already known, even mid-update. */
uintptr_t gil_lo, gil_span;

/* Serialises recognition (rare: once per GIL creation). */
static pthread_mutex_t recognition_lock = PTHREAD_MUTEX_INITIALIZER;

/* The finalizing value last recorded (0: not finalizing); see
 * gil_model_check_finalizing(). */
static uintptr_t finalizing_last;

static int find_gil(uintptr_t addr)
{
	unsigned n = __atomic_load_n(&gil_count, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++)
		if (addr - gils[i].cond < GIL_TAIL_FROM_COND)
			return (int)i;
	return -1;
}

static void write_gil_meta(unsigned index)
{
	struct gtr_meta_gil r;
	memset(&r, 0, sizeof r);
	r.rec.type = GTR_META_GIL;
	r.rec.size = sizeof r;
	r.base = gils[index].base;
	r.index = index;
	uintptr_t rt = (uintptr_t)shim_python.runtime;
	r.in_runtime = r.base >= rt && r.base - rt < shim_python.runtime_size;
	r.discovered_clock = shim_clock_now();
	recorder_add_meta(&r, sizeof r);
}

void gil_model_write_meta(void)
{
	for (unsigned i = 0; i < gil_count; i++)
		write_gil_meta(i);
}

static void publish_range(uintptr_t lo, uintptr_t hi)
{
	if (gil_span) {
		uintptr_t old_lo = gil_lo, old_hi = gil_lo + gil_span;
		if (old_lo < lo)
			lo = old_lo;
		if (old_hi > hi)
			hi = old_hi;
	}
	/* Widen first: [gil_lo, gil_lo + new span) covers every known GIL. */
	__atomic_store_n(&gil_span, hi - lo, __ATOMIC_RELEASE);
	__atomic_store_n(&gil_lo, lo, __ATOMIC_RELEASE);
}

/* The last of create_gil's four inits was seen: cond at `cond`. */
static void recognise(uintptr_t cond)
{
	if (!shim_real.mutex_lock)
		return;
	shim_real.mutex_lock(&recognition_lock);
	shim_self.in_shim = 1; /* activation's libc calls must pass through */
	if (shim_state == SHIM_DORMANT && !shim_probe_python())
		goto out;
	uintptr_t field_shift = shim_python.build & GTR_BUILD_FREE_THREADED ? GIL_FREE_THREADED_SHIFT : 0;
	uintptr_t base = cond - GIL_OFF_COND - field_shift;
	uintptr_t rt = (uintptr_t)shim_python.runtime;
	bool in_runtime = base >= rt && base - rt + GIL_SIZE + field_shift <= shim_python.runtime_size;
	volatile int *locked = (volatile int *)(base + shim_python.gil_off_locked);
	if (!in_runtime && *locked != -1)
		goto out;

	int known = find_gil(cond);
	if (known >= 0) {
		/* re-created (fork child, recreate_gil): nobody holds it now */
		if (shim_self.gil_held == known + 1)
			shim_self.gil_held = 0;
		if (shim_self.gil_taking == known + 1)
			shim_self.gil_taking = 0;
		if (shim_state == SHIM_ACTIVE)
			recorder_emit(GTR_EV_GIL_REINIT, (unsigned)known, NULL);
		goto out;
	}
	if (gil_count == MAX_GILS)
		goto out;
	struct gil_object *g = &gils[gil_count];
	g->base = base;
	g->cond = cond;
	g->last_holder = (volatile uintptr_t *)(base + shim_python.gil_off_last_holder);
	g->locked = locked;
	g->switch_number = (volatile unsigned long *)(base + GIL_OFF_SWITCH_NUMBER + field_shift);
	/* 3.13t+: `int enabled` comes first, what field_shift makes room for */
	g->enabled = field_shift ? (volatile int *)base : NULL;
	g->enabled_last = -1;
	if (shim_state == SHIM_DORMANT && !shim_activate())
		goto out;
	__atomic_store_n(&gil_count, gil_count + 1, __ATOMIC_RELEASE);
	publish_range(cond, cond + GIL_TAIL_FROM_COND);
	write_gil_meta(gil_count - 1);
out:
	shim_self.in_shim = 0;
	shim_real.mutex_unlock(&recognition_lock);
}

/* Called after every successful pthread_mutex_init/pthread_cond_init while
 * the shim is dormant or active.  Keeps this thread's last four inits and
 * matches create_gil's order: mutex M, mutex SM, cond C, cond SC. */
void gil_model_on_init(const void *addr, bool is_cond)
{
	struct shim_thread *t = &shim_self;
	if (t->in_shim)
		return;
	memmove(t->init_addr, t->init_addr + 1, 3 * sizeof t->init_addr[0]);
	memmove(t->init_is_cond, t->init_is_cond + 1, 3);
	t->init_addr[3] = (uintptr_t)addr;
	t->init_is_cond[3] = is_cond;
	if (t->init_count < 4)
		t->init_count++;
	if (t->init_count < 4 || !is_cond)
		return;
	uintptr_t c = t->init_addr[2];
	if (!t->init_is_cond[0] && !t->init_is_cond[1] && t->init_is_cond[2] &&
	    t->init_addr[0] == c + GIL_MUTEX_FROM_COND && t->init_addr[1] == c + GIL_SWITCH_MUTEX_FROM_COND &&
	    t->init_addr[3] == c + GIL_SWITCH_COND_FROM_COND) {
		int saved_errno = errno;
		t->init_count = 0;
		recognise(c);
		errno = saved_errno;
	}
}

/* ---- finalization ------------------------------------------------------ */

void gil_model_check_finalizing(void)
{
	uintptr_t now;
	if (shim_python.finalizing_offset >= 0)
		now = __atomic_load_n((uintptr_t *)((char *)shim_python.runtime + shim_python.finalizing_offset),
		                      __ATOMIC_RELAXED);
	else if (shim_python.is_finalizing)
		now = shim_python.is_finalizing() ? 1 : 0;
	else
		return;
	uintptr_t last = __atomic_load_n(&finalizing_last, __ATOMIC_RELAXED);
	if ((now != 0) == (last != 0))
		return;
	/* Stamped before the exchange: a thread that sees the new value after
	 * it stamps its own event later, so the flip comes first in the trace. */
	uint64_t stamp = shim_clock_now();
	if (!__atomic_compare_exchange_n(&finalizing_last, &last, now, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_RELAXED))
		return; /* another thread recorded this flip */
	recorder_note_finalizing(now != 0);
	uint64_t tstate = shim_python.finalizing_offset >= 0 ? now : 0;
	if (now && stack_wanted(STACKS_FINALIZE))
		stack_emit_at(GTR_EV_FINALIZING, 1, &tstate, stamp);
	else
		recorder_emit_at(GTR_EV_FINALIZING, now != 0, &tstate, stamp);
}

/* ---- free-threaded builds: is the GIL on? ------------------------------ */

/* Record gil i's `enabled` count if it changed since last recorded.
 * CPython changes it under stop-the-world or with the GIL's own mutex
 * (_PyEval_EnableGILTransient/Permanent, _PyEval_DisableGIL), which the
 * shim does not see: it is read where the shim runs anyway, so a change is
 * recorded at the next GIL take or C-API call, not at its instant. */
static void check_enabled(unsigned i)
{
	struct gil_object *g = &gils[i];
	int now = __atomic_load_n(g->enabled, __ATOMIC_RELAXED);
	int last = __atomic_load_n(&g->enabled_last, __ATOMIC_RELAXED);
	if (now == last ||
	    !__atomic_compare_exchange_n(&g->enabled_last, &last, now, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return;
	uint64_t count = (uint64_t)(uint32_t)now;
	recorder_emit(GTR_EV_GIL_ENABLED, i, &count);
}

void gil_model_check_enabled(void)
{
	if (!(shim_python.build & GTR_BUILD_FREE_THREADED))
		return;
	unsigned n = __atomic_load_n(&gil_count, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++)
		if (gils[i].enabled)
			check_enabled(i);
}

bool gil_model_finalizing(void)
{
	return __atomic_load_n(&finalizing_last, __ATOMIC_RELAXED) != 0;
}

/* ---- transitions ------------------------------------------------------ */

/* Record an ACQUIRE or RELEASE no earlier than the GIL's previous one.
 * Called with the GIL mutex M held, which serialises last_clock. */
static void gil_stamp_under_mutex(struct gil_object *g, unsigned type, unsigned index, const uint64_t *payload)
{
	uint64_t now = shim_clock_now();
	if (now <= g->last_clock)
		now = g->last_clock + 1;
	g->last_clock = recorder_emit_at(type, index, payload, now);
}

/* Each hook runs only for addresses inside the GIL range, keeps errno, and
 * records nothing when the shim is off or re-entered: hook_enter() returns
 * the index of the GIL whose primitive at `from_cond` is `addr`, with the
 * shim entered and errno saved, or -1; hook_leave() undoes it. */
static int hook_enter(const void *addr, uintptr_t from_cond, int *saved_errno)
{
	int i = find_gil((uintptr_t)addr);
	if (i < 0 || (uintptr_t)addr != gils[i].cond + from_cond || !shim_enter())
		return -1;
	*saved_errno = errno;
	return i;
}

static void hook_leave(int saved_errno)
{
	errno = saved_errno;
	shim_leave();
}

bool gil_model_on_lock(const pthread_mutex_t *m)
{
	int saved_errno;
	int i = hook_enter(m, GIL_MUTEX_FROM_COND, &saved_errno);
	if (i < 0)
		return false;
	bool taking = shim_self.gil_held != i + 1;
	if (taking) {
		/* take_gil(); drop_gil() is the holder's lock of M */
		shim_self.gil_taking = (uint8_t)(i + 1);
		recorder_emit(GTR_EV_GIL_TAKE_BEGIN, (unsigned)i, NULL);
		gil_model_check_finalizing();
		if (gils[i].enabled)
			check_enabled((unsigned)i);
	}
	hook_leave(saved_errno);
	return taking && provoking(GTR_PROVOKE_JITTER);
}

/* Called with M held, before the real unlock. */
bool gil_model_on_unlock(const pthread_mutex_t *m)
{
	int saved_errno;
	bool released = false;
	int i = hook_enter(m, GIL_MUTEX_FROM_COND, &saved_errno);
	if (i < 0)
		return false;
	if (shim_self.gil_held == i + 1) {
		if (*gils[i].locked == 0) {
			shim_self.gil_held = 0;
			gil_stamp_under_mutex(&gils[i], GTR_EV_GIL_RELEASE, (unsigned)i, NULL);
			gil_model_check_finalizing();
			released = true;
		}
	} else if (shim_self.gil_taking == i + 1) {
		shim_self.gil_taking = 0;
		recorder_emit(GTR_EV_GIL_TAKE_ABANDON, (unsigned)i, NULL);
		gil_model_check_finalizing();
	}
	hook_leave(saved_errno);
	return released && provoking(GTR_PROVOKE_JITTER | GTR_PROVOKE_EXIT_DELAY_AFTER_FREE);
}

/* Called with M held, before the real timed wait on C. */
void gil_model_on_timedwait_begin(const pthread_cond_t *c, unsigned long *switch_before)
{
	int saved_errno;
	int i = hook_enter(c, 0, &saved_errno);
	if (i < 0)
		return;
	*switch_before = *gils[i].switch_number;
	recorder_emit(GTR_EV_GIL_WAIT_BEGIN, (unsigned)i, NULL);
	hook_leave(saved_errno);
}

/* Called with M held again, after the real timed wait on C returned rc. */
void gil_model_on_timedwait_end(const pthread_cond_t *c, int rc, unsigned long switch_before)
{
	int saved_errno;
	int i = hook_enter(c, 0, &saved_errno);
	if (i < 0)
		return;
	unsigned type = GTR_EV_GIL_WAIT_SIGNALED;
	if (rc == ETIMEDOUT)
		type = *gils[i].locked && *gils[i].switch_number == switch_before ? GTR_EV_GIL_DROP_REQUEST
		                                                                  : GTR_EV_GIL_WAIT_TIMEOUT;
	recorder_emit(type, (unsigned)i, NULL);
	gil_model_check_finalizing();
	hook_leave(saved_errno);
}

/* Untimed wait: drop_gil's forced switch waits on SC under SM. */
void gil_model_on_wait(const pthread_cond_t *c, bool begin)
{
	int saved_errno;
	int i = hook_enter(c, GIL_SWITCH_COND_FROM_COND, &saved_errno);
	if (i < 0)
		return;
	recorder_emit(begin ? GTR_EV_GIL_FORCED_SWITCH_BEGIN : GTR_EV_GIL_FORCED_SWITCH_END, (unsigned)i, NULL);
	hook_leave(saved_errno);
}

/* signal(SC) happens in take_gil right after the acquisition, with M and SM
 * held: last_holder and switch_number are the new holder's. */
void gil_model_on_signal(const pthread_cond_t *c)
{
	int saved_errno;
	int i = hook_enter(c, GIL_SWITCH_COND_FROM_COND, &saved_errno);
	if (i < 0)
		return;
	uint64_t payload[2] = { *gils[i].last_holder, *gils[i].switch_number };
	shim_self.gil_held = (uint8_t)(i + 1);
	shim_self.gil_taking = 0;
	gil_stamp_under_mutex(&gils[i], GTR_EV_GIL_ACQUIRE, (unsigned)i, payload);
	gil_model_check_finalizing();
	shim_know_tstate(payload[0]);
	hook_leave(saved_errno);
}

/* The GIL the forking thread held, to be announced as the first event of
 * the child's trace, which opens only when the child records something. */
static struct {
	bool pending;
	unsigned gil;
	uint64_t tstate;
} held_at_fork;

void gil_model_after_fork_child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	recognition_lock = fresh; /* another parent thread may have held it */
	held_at_fork.pending = false;
	if (!shim_enter())
		return;
	if (shim_self.gil_held) {
		unsigned i = shim_self.gil_held - 1u;
		held_at_fork.gil = i;
		held_at_fork.tstate = *gils[i].last_holder;
		held_at_fork.pending = true;
		shim_know_tstate(held_at_fork.tstate);
	}
	shim_leave();
}

void gil_model_child_trace_opened(void)
{
	if (held_at_fork.pending) {
		held_at_fork.pending = false;
		recorder_emit(GTR_EV_GIL_HELD_AT_FORK, held_at_fork.gil, &held_at_fork.tstate);
	}
}
