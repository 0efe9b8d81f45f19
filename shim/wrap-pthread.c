/*
 * wrap-pthread.c: the pthread mutex and condition variable interposers.
 *
 * Design note.  CPython calls libc's pthread functions through its PLT on
 * every build (static, shared, LTO, stripped), so these are seen always and
 * are the primary signal (docs/cpython-internals.md §5).  Each wrapper is the
 * real call plus a guarded hook into the GIL model (gil-model.c): the fast
 * path, for every mutex and condvar that is not part of a GIL, is one
 * subtract-and-compare against the GIL address range and then libc.  In a
 * process with no GIL the range is empty.  Hooks run before the real call
 * when they must observe state under the GIL mutex (unlock) or timestamp an
 * attempt that may block (lock), and after it when they observe the result.
 *
 * Init calls feed the create_gil signature detector while the shim is
 * dormant or active; they are not hot.  pthread return values are passed
 * through untouched; the hooks keep errno.
 *
 * What it cannot see: locks taken with the futex syscall directly, or
 * through pthread_mutex_clocklock / pthread_cond_clockwait, which CPython
 * 3.8-3.14 do not use for the GIL.
 */
#include <errno.h>

#include "shim.h"

static inline bool watching_inits(void)
{
	return shim_state == SHIM_DORMANT || shim_state == SHIM_ACTIVE;
}

SHIM_EXPORT int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr)
{
	RESOLVED(mutex_init);
	int rc = shim_real.mutex_init(m, attr);
	if (rc == 0 && watching_inits())
		gil_model_on_init(m, false);
	return rc;
}

SHIM_EXPORT int pthread_mutex_lock(pthread_mutex_t *m)
{
	RESOLVED(mutex_lock);
	if (gil_maybe(m) && gil_model_on_lock(m))
		provoke_before_gil_take(); /* provoke=jitter: a take, before M is locked */
	return shim_real.mutex_lock(m);
}

SHIM_EXPORT int pthread_mutex_trylock(pthread_mutex_t *m)
{
	RESOLVED(mutex_trylock);
	int rc = shim_real.mutex_trylock(m);
	if (rc == 0 && gil_maybe(m))
		(void)gil_model_on_lock(m); /* M is held: no jitter here */
	return rc;
}

SHIM_EXPORT int pthread_mutex_unlock(pthread_mutex_t *m)
{
	RESOLVED(mutex_unlock);
	if (gil_maybe(m) && gil_model_on_unlock(m)) {
		/* provoke=: the GIL was released; sleep once it is free */
		int rc = shim_real.mutex_unlock(m);
		provoke_after_gil_release();
		return rc;
	}
	return shim_real.mutex_unlock(m);
}

SHIM_EXPORT int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *attr)
{
	RESOLVED(cond_init);
	int rc = shim_real.cond_init(c, attr);
	if (rc == 0 && watching_inits())
		gil_model_on_init(c, true);
	return rc;
}

SHIM_EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
	RESOLVED(cond_wait);
	if (!gil_maybe(c))
		return shim_real.cond_wait(c, m);
	gil_model_on_wait(c, true);
	int rc = shim_real.cond_wait(c, m);
	gil_model_on_wait(c, false);
	return rc;
}

SHIM_EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *abstime)
{
	RESOLVED(cond_timedwait);
	if (!gil_maybe(c))
		return shim_real.cond_timedwait(c, m, abstime);
	unsigned long switch_before = 0;
	gil_model_on_timedwait_begin(c, &switch_before);
	int rc = shim_real.cond_timedwait(c, m, abstime);
	gil_model_on_timedwait_end(c, rc, switch_before);
	return rc;
}

SHIM_EXPORT int pthread_cond_signal(pthread_cond_t *c)
{
	RESOLVED(cond_signal);
	if (gil_maybe(c))
		gil_model_on_signal(c);
	return shim_real.cond_signal(c);
}

/* No CPython broadcasts a GIL condvar; a broadcast of switch_cond would
 * still mean what a signal means (take_gil completed), so it is treated
 * the same rather than missed. */
SHIM_EXPORT int pthread_cond_broadcast(pthread_cond_t *c)
{
	RESOLVED(cond_broadcast);
	if (gil_maybe(c))
		gil_model_on_signal(c);
	return shim_real.cond_broadcast(c);
}
