/*
 * lock-table.c: which thread owns each PyThread lock.
 *
 * Design note.  The bpo-23309 / gh-129536 abort ("could not acquire lock
 * for <_io.BufferedWriter name='<stderr>'> at interpreter shutdown,
 * possibly due to daemon threads") is a lock owned by a thread that
 * finalization ended.  The lock itself does not know its owner: on CPython
 * 3.8-3.13 a PyThread_type_lock is a POSIX semaphore of value 1
 * (thread_pthread.h, USE_SEMAPHORES) and sem_t keeps a count, not a
 * thread.  So the sem_* wrappers (wrap-sem.c) keep the owners here: a
 * fixed table of slots keyed by the lock's address, open addressing with
 * linear probing over at most LOCK_PROBES slots from the key's home.
 *
 * Lock-free and allocation-free: a slot is claimed with a compare-and-swap
 * of its key, an owner is one relaxed store, a lookup relaxed loads, so the
 * wrappers stay cheap on the uncontended path and a crash handler can read
 * the table.  A destroyed lock's slot becomes LOCK_KEY_GONE (a tombstone:
 * lookups probe past it, a new lock may take it); a slot never goes back
 * to LOCK_KEY_EMPTY, where a lookup stops.  When no slot is free within
 * LOCK_PROBES of a new lock's home, that lock is not tracked and the
 * trace's header gets GTR_FLAG_LOCKS_UNTRACKED, which the reader reports:
 * a missing owner is never silent.
 *
 * The owner is the kernel tid, cached per thread, the thread identity the
 * trace's chunks carry.  It is set after an acquire succeeds and cleared
 * before a release (sem_post, by whichever thread posts), so that a store
 * of the next owner never comes before the clear of the previous one.
 *
 * What it cannot see: the owner of a lock taken before the trace was
 * active (made before the GIL existed, or acquired in a path the wrappers
 * do not see), a lock made or released through the futex system call, and
 * PyMutex-based locks (3.13's internal ones, 3.15's PyThread_type_lock), whose
 * uncontended acquire is an atomic in user space (docs/cpython-internals.md
 * §7).  A slot's owner and key are read without a lock: a lookup racing
 * a destroy may see the slot of a lock destroyed a moment ago.
 */
#include <errno.h>
#include <unistd.h>

#include "shim.h"

/* Slots (a power of two) and the probe limit from a key's home. */
#define LOCK_SLOTS 16384u
#define LOCK_PROBES 32u

/* The table; zero (all LOCK_KEY_EMPTY) until locks are made while tracing. */
static struct lock_slot lock_slots[LOCK_SLOTS];

/* Slots ever claimed (see shim.h). */
unsigned lock_table_used;

/* This thread's tid, 0 until lock_table_self() first runs on it. */
static SHIM_TLS int32_t lock_self_tid;

static inline unsigned lock_home(uintptr_t key)
{
	return (unsigned)(((uint64_t)key >> 3) * UINT64_C(0x9e3779b97f4a7c15) >> 50) & (LOCK_SLOTS - 1);
}

struct lock_slot *lock_table_find(const void *lock)
{
	uintptr_t key = (uintptr_t)lock;
	unsigned home = lock_home(key);
	for (unsigned i = 0; i < LOCK_PROBES; i++) {
		struct lock_slot *s = &lock_slots[(home + i) & (LOCK_SLOTS - 1)];
		uintptr_t k = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);
		if (k == key)
			return s;
		if (k == LOCK_KEY_EMPTY)
			return NULL;
	}
	return NULL;
}

void lock_table_add(const void *lock)
{
	uintptr_t key = (uintptr_t)lock;
	if (key <= LOCK_KEY_GONE)
		return;
	/* sem_init again on a tracked address (its memory reused without
	 * sem_destroy): a new lock, no owner */
	struct lock_slot *known = lock_table_find(lock);
	if (known) {
		__atomic_store_n(&known->owner, 0, __ATOMIC_RELAXED);
		return;
	}
	unsigned home = lock_home(key);
	for (unsigned i = 0; i < LOCK_PROBES; i++) {
		struct lock_slot *s = &lock_slots[(home + i) & (LOCK_SLOTS - 1)];
		uintptr_t k = __atomic_load_n(&s->key, __ATOMIC_RELAXED);
		if (k != LOCK_KEY_EMPTY && k != LOCK_KEY_GONE)
			continue;
		__atomic_store_n(&s->owner, 0, __ATOMIC_RELAXED);
		if (__atomic_compare_exchange_n(&s->key, &k, key, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
			if (k == LOCK_KEY_EMPTY)
				__atomic_add_fetch(&lock_table_used, 1, __ATOMIC_RELAXED);
			return;
		}
	}
	recorder_set_flag(GTR_FLAG_LOCKS_UNTRACKED);
}

void lock_table_remove(const void *lock)
{
	struct lock_slot *s = lock_table_find(lock);
	if (s) {
		__atomic_store_n(&s->owner, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->key, LOCK_KEY_GONE, __ATOMIC_RELEASE);
	}
}

int32_t lock_table_self(void)
{
	if (unlikely(!lock_self_tid)) {
		int saved_errno = errno;
		lock_self_tid = gettid();
		errno = saved_errno;
	}
	return lock_self_tid;
}

void lock_table_after_fork_child(void)
{
	int32_t old = lock_self_tid;
	lock_self_tid = 0;
	int32_t now = lock_table_self();
	if (!old || !__atomic_load_n(&lock_table_used, __ATOMIC_RELAXED))
		return;
	for (unsigned i = 0; i < LOCK_SLOTS; i++)
		if (__atomic_load_n(&lock_slots[i].owner, __ATOMIC_RELAXED) == old)
			__atomic_store_n(&lock_slots[i].owner, now, __ATOMIC_RELAXED);
}

/* Call `report` with each lock the calling thread owns.  async-signal-safe
 * (loads only); a scan of the whole table, for thread ends, which are
 * rare. */
static void each_owned(void (*report)(uint64_t lock, unsigned at), unsigned at)
{
	if (!lock_self_tid || !__atomic_load_n(&lock_table_used, __ATOMIC_RELAXED))
		return;
	for (unsigned i = 0; i < LOCK_SLOTS; i++) {
		const struct lock_slot *s = &lock_slots[i];
		if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) != lock_self_tid)
			continue;
		uintptr_t key = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);
		if (key > LOCK_KEY_GONE)
			report(key, at);
	}
}

static void emit_held(uint64_t lock, unsigned at)
{
	recorder_emit(GTR_EV_LOCK_HELD, at, &lock);
}

static void emit_held_signal_safe(uint64_t lock, unsigned at)
{
	(void)recorder_emit_signal_safe(GTR_EV_LOCK_HELD, at, &lock);
}

void lock_table_report_held(unsigned at)
{
	each_owned(emit_held, at);
}

void lock_table_report_held_signal_safe(void)
{
	each_owned(emit_held_signal_safe, GTR_LOCK_HELD_AT_CRASH);
}
