/*
 * wrap-sem.c: the POSIX semaphore interposers: PyThread locks and their
 * owners, and the waits of the parking lot.
 *
 * Design note.  On CPython 3.8-3.13 a PyThread_type_lock (threading.Lock
 * up to 3.12, the lock of every io.Buffered* object, the import lock) is a
 * POSIX semaphore (Python/thread_pthread.h, USE_SEMAPHORES):
 * PyThread_allocate_lock is sem_init(lock, 0, 1), an acquire without a
 * timeout sem_trywait (timeout 0) or sem_wait, with one sem_timedwait
 * (3.8-3.11) or sem_clockwait (3.12+), a release sem_post, PyThread_free_lock
 * sem_destroy.  libpython and the static interpreters import these from libc,
 * so a preload sees every call.  A semaphore made with value 1 and pshared 0
 * is taken for a lock and tracked in the owner table (lock-table.c): a
 * successful acquire makes the calling thread its owner, a post clears it.
 * Other semaphores pass through after one failed lookup.
 *
 * The parking lot (3.13+, Python/parking_lot.c): a thread that must wait
 * for a contended PyMutex, a stop-the-world, a PyEvent (every blocking wait
 * of a free-threaded build) makes a _PySemaphore on its stack, sem_init(s,
 * 0, 0), waits on it (sem_clockwait, sem_timedwait or sem_wait) until an
 * unparker posts it, and destroys it.  The last value-0 semaphore a thread
 * made is remembered (one word per thread); a wait on it is recorded as
 * BLOCK_BEGIN and BLOCK_END, whatever the program's semaphore (a native
 * thread's own value-0 semaphore looks the same).  A park costs a futex
 * wait and wake anyway (microseconds); the two events add about 27 ns to
 * it (bench/mutex-pair.c park, docs/performance.md), and a wait on any
 * other semaphore one compare.
 *
 * Recording, only where it explains an exit (bpo-23309, gh-129536): a
 * blocking acquire of a tracked lock while finalization is under way is
 * first tried without waiting; only when that fails is the wait recorded,
 * at its start (the lock, its owner then, its timeout) and at its end
 * (acquired, timed out, interrupted).  That is the finalizing thread in
 * flush_std_files() -> _enter_buffered_busy(), which waits at most 1 s
 * (PyThread_acquire_lock_timed(lock, 1e6, 0)) for a buffered stream's lock
 * and then calls Py_FatalError: the owner is the daemon thread that the
 * must-exit check ended while it held the lock (pthread_exit on 3.8-3.13.7).
 * Which locks a thread still owns when it ends, parks or crashes is
 * recorded by wrap-lifecycle.c and crash.c.  An ordinary program's trace
 * gets no lock event at all.
 *
 * Return values and errno are the real calls' own; the try before a
 * recorded wait is what the wait itself would do first (POSIX: the
 * timeout need not be checked when the semaphore can be taken at once).
 *
 * What it cannot see: locks that are not semaphores.  CPython 3.15's
 * PyThread_type_lock is a PyMutex (Python/thread.c, _PyMutex_LockTimed), as
 * are the interpreter's internal locks since 3.13: an uncontended acquire
 * or release is an atomic in user space, and a contended one parks in the
 * parking lot, whose semaphore says nothing of the lock it waits for.
 * (3.13.0's threading.Lock and buffered streams still use PyThread locks,
 * that is semaphores.)  A
 * lock acquired before tracing began, or with pshared 1, has no owner.
 */
#include <errno.h>
#include <time.h>

#include "shim.h"

/* The tracked slot of sem, or NULL: one load when no lock was made while
 * tracing. */
static inline struct lock_slot *tracked(const sem_t *sem)
{
	if (likely(!__atomic_load_n(&lock_table_used, __ATOMIC_RELAXED)))
		return NULL;
	return lock_table_find(sem);
}

static inline void became_owner(struct lock_slot *s)
{
	__atomic_store_n(&s->owner, lock_table_self(), __ATOMIC_RELAXED);
}

/* Whether finalization is under way, the flag sampled now.  errno kept. */
static bool finalizing_now(void)
{
	if (!shim_enter())
		return false;
	int saved_errno = errno;
	gil_model_check_finalizing();
	bool fin = gil_model_finalizing();
	errno = saved_errno;
	shim_leave();
	return fin;
}

/* ns until abstime on clock, 0 if past (or the clock unreadable). */
static uint64_t timeout_ns(clockid_t clock, const struct timespec *abstime)
{
	struct timespec now;
	if (clock_gettime(clock, &now) != 0)
		return 0;
	int64_t ns = (int64_t)(abstime->tv_sec - now.tv_sec) * 1000000000 + (abstime->tv_nsec - now.tv_nsec);
	return ns > 0 ? (uint64_t)ns : 0;
}

enum wait_kind { WAIT_PLAIN, WAIT_TIMED, WAIT_CLOCK };

/* The real wait of that kind. */
static int real_wait(sem_t *sem, enum wait_kind kind, clockid_t clock, const struct timespec *abstime)
{
	return kind == WAIT_PLAIN   ? shim_real.sem_wait(sem)
	       : kind == WAIT_TIMED ? shim_real.sem_timedwait(sem, abstime)
	                            : shim_real.sem_clockwait(sem, clock, abstime);
}

/* How a wait ended (enum gtr_lock_wait_end), from its result and errno. */
static unsigned wait_end(int rc, int err)
{
	return rc == 0 ? GTR_LOCK_ACQUIRED
	       : err == ETIMEDOUT ? GTR_LOCK_TIMED_OUT
	       : err == EINTR ? GTR_LOCK_INTERRUPTED : GTR_LOCK_FAILED;
}

/* A blocking acquire of tracked lock `s` while finalizing: the try first,
 * then the recorded wait. */
static int observed_wait(struct lock_slot *s, sem_t *sem, enum wait_kind kind, clockid_t clock,
                         const struct timespec *abstime)
{
	int saved_errno = errno;
	if (shim_real.sem_trywait(sem) == 0) {
		became_owner(s);
		errno = saved_errno;
		return 0;
	}
	if (shim_enter()) {
		uint64_t timeout = kind == WAIT_PLAIN ? 0 : timeout_ns(kind == WAIT_TIMED ? CLOCK_REALTIME : clock, abstime);
		uint64_t payload[2] = { (uint64_t)(uintptr_t)sem,
			                gtr_lock_wait_word(__atomic_load_n(&s->owner, __ATOMIC_RELAXED), timeout / 1000) };
		stack_emit_if(stack_wanted(STACKS_FINALIZE), GTR_EV_LOCK_WAIT_BEGIN, kind != WAIT_PLAIN, payload);
		shim_leave();
	}
	errno = saved_errno;
	int rc = real_wait(sem, kind, clock, abstime);
	int err = errno;
	if (rc == 0)
		became_owner(s);
	if (shim_enter()) {
		uint64_t lock = (uint64_t)(uintptr_t)sem;
		recorder_emit(GTR_EV_LOCK_WAIT_END, wait_end(rc, err), &lock);
		shim_leave();
	}
	errno = err;
	return rc;
}

/* A wait on the thread's own value-0 semaphore: the parking lot. */
static int blocked_wait(sem_t *sem, enum wait_kind kind, clockid_t clock, const struct timespec *abstime)
{
	int saved_errno = errno;
	if (shim_enter()) {
		uint64_t word = (uint64_t)(uintptr_t)sem;
		recorder_emit(GTR_EV_BLOCK_BEGIN, kind != WAIT_PLAIN, &word);
		shim_leave();
	}
	errno = saved_errno;
	int rc = real_wait(sem, kind, clock, abstime);
	int err = errno;
	if (shim_enter()) {
		recorder_emit(GTR_EV_BLOCK_END, wait_end(rc, err), NULL);
		shim_leave();
	}
	errno = err;
	return rc;
}

SHIM_EXPORT int sem_init(sem_t *sem, int pshared, unsigned value)
{
	RESOLVED(sem_init);
	int rc = shim_real.sem_init(sem, pshared, value);
	if (rc == 0 && shim_state == SHIM_ACTIVE) {
		if (value == 1 && !pshared)
			lock_table_add(sem);
		else if (tracked(sem))
			lock_table_remove(sem); /* a lock's memory, reused for another semaphore */
		if (value == 0 && !pshared)
			shim_self.own_sem = sem;
	}
	return rc;
}

SHIM_EXPORT int sem_destroy(sem_t *sem)
{
	RESOLVED(sem_destroy);
	if (tracked(sem))
		lock_table_remove(sem);
	if (shim_self.own_sem == sem)
		shim_self.own_sem = NULL;
	return shim_real.sem_destroy(sem);
}

SHIM_EXPORT int sem_trywait(sem_t *sem)
{
	RESOLVED(sem_trywait);
	int rc = shim_real.sem_trywait(sem);
	if (rc == 0) {
		struct lock_slot *s = tracked(sem);
		if (s)
			became_owner(s);
	}
	return rc;
}

/* The three blocking waits: a tracked lock's while finalizing is observed,
 * one on the thread's own value-0 semaphore is a park, the rest pass. */
static int wait_on(sem_t *sem, enum wait_kind kind, clockid_t clock, const struct timespec *abstime)
{
	struct lock_slot *s = tracked(sem);
	if (s && finalizing_now())
		return observed_wait(s, sem, kind, clock, abstime);
	if (unlikely(sem == shim_self.own_sem) && !s)
		return blocked_wait(sem, kind, clock, abstime);
	int rc = real_wait(sem, kind, clock, abstime);
	if (rc == 0 && s)
		became_owner(s);
	return rc;
}

SHIM_EXPORT int sem_wait(sem_t *sem)
{
	RESOLVED(sem_wait);
	return wait_on(sem, WAIT_PLAIN, CLOCK_REALTIME, NULL);
}

SHIM_EXPORT int sem_timedwait(sem_t *sem, const struct timespec *abstime)
{
	RESOLVED(sem_timedwait);
	return wait_on(sem, WAIT_TIMED, CLOCK_REALTIME, abstime);
}

SHIM_EXPORT int sem_clockwait(sem_t *sem, clockid_t clock, const struct timespec *abstime)
{
	RESOLVED(sem_clockwait);
	return wait_on(sem, WAIT_CLOCK, clock, abstime);
}

/* The owner is cleared before the post: once posted, another thread may
 * take the lock and store itself as owner. */
SHIM_EXPORT int sem_post(sem_t *sem)
{
	RESOLVED(sem_post);
	struct lock_slot *s = tracked(sem);
	if (s)
		__atomic_store_n(&s->owner, 0, __ATOMIC_RELAXED);
	return shim_real.sem_post(sem);
}
