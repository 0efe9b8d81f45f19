/*
 * tstate-table.c: the thread states the shim knows, so that free() can
 * tell when one of them dies.
 *
 * Design note.  A PyThreadState is learned when the GIL is acquired with it
 * (gil->last_holder), when a C-API wrapper returns one (PyThreadState_New,
 * PyEval_SaveThread, Py_NewInterpreter) and when one is handed to
 * PyThreadState_Clear/Delete.  free() consults this table on every call
 * while tracing, so the lookup is lock-free: a seqlock lets readers probe
 * while a writer (insert, remove; rare, serialised by a spinlock that no
 * host code can hold) changes the table, and a reader that saw a change
 * probes again.  Each thread state is stored under two keys: its address
 * and the address 16 bytes below it, because CPython's debug allocator
 * hooks (debug builds, PYTHONMALLOC=debug) hand out blocks after a 16-byte
 * header and free that header's address.
 *
 * What it cannot see: thread states that no thread ever acquired the GIL
 * with and no wrapper saw (a thread created and destroyed without running
 * Python code on a static build), and more than TSTATE_KEYS / 2 live thread
 * states at once (further ones are not learned).
 * Allocations are not watched: a block of the thread-state size is not a
 * thread state until one of the above confirms it, and that confirmation
 * is all the detectors need.
 */
#include "shim.h"

#define TSTATE_KEYS 4096u            /* power of two */
#define TSTATE_KEYS_MAX (TSTATE_KEYS / 4 * 3)
#define DEBUG_ALLOC_HEADER 16u       /* 2 * sizeof(size_t), obmalloc.c */

struct tstate_slot {
	uintptr_t key;               /* 0: empty */
	uintptr_t tstate;
};

static struct tstate_slot slots[TSTATE_KEYS];
/* Keys per home slot: free() looks here first (8 KiB, stays in cache) and
 * probes the table only when the count is not zero. */
static uint16_t home_count[TSTATE_KEYS];
static unsigned slot_count;
static unsigned seq;                 /* odd while a writer changes slots */
static int writer_lock;

/* Bumped on every removal: a thread's cached "known" tstate is stale then. */
unsigned tstate_table_generation;

static inline unsigned slot_of(uintptr_t key)
{
	return (unsigned)(((uint64_t)key >> 4) * UINT64_C(0x9e3779b97f4a7c15) >> 52) & (TSTATE_KEYS - 1);
}

static uintptr_t probe(uintptr_t key)
{
	for (unsigned i = slot_of(key), n = 0; n < TSTATE_KEYS; i = (i + 1) & (TSTATE_KEYS - 1), n++) {
		uintptr_t k = __atomic_load_n(&slots[i].key, __ATOMIC_RELAXED);
		if (k == key)
			return __atomic_load_n(&slots[i].tstate, __ATOMIC_RELAXED);
		if (k == 0)
			return 0;
	}
	return 0;
}

uintptr_t tstate_table_find(const void *block)
{
	uintptr_t key = (uintptr_t)block, found;
	unsigned before;
	if (likely(!__atomic_load_n(&home_count[slot_of(key)], __ATOMIC_RELAXED)))
		return 0;
	do {
		while ((before = __atomic_load_n(&seq, __ATOMIC_ACQUIRE)) & 1)
			__builtin_ia32_pause();
		found = probe(key);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (__atomic_load_n(&seq, __ATOMIC_RELAXED) != before);
	return found;
}

static void write_begin(void)
{
	while (__atomic_exchange_n(&writer_lock, 1, __ATOMIC_ACQUIRE))
		__builtin_ia32_pause();
	__atomic_store_n(&seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void write_end(void)
{
	__atomic_store_n(&seq, seq + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&writer_lock, 0, __ATOMIC_RELEASE);
}

static void put(uintptr_t key, uintptr_t tstate)
{
	unsigned i = slot_of(key);
	while (slots[i].key && slots[i].key != key)
		i = (i + 1) & (TSTATE_KEYS - 1);
	if (!slots[i].key) {
		slot_count++;
		__atomic_store_n(&home_count[slot_of(key)], home_count[slot_of(key)] + 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&slots[i].tstate, tstate, __ATOMIC_RELAXED);
	__atomic_store_n(&slots[i].key, key, __ATOMIC_RELAXED);
}

/* Linear probing without tombstones: after emptying slot i, move back every
 * later entry of the run that may now be unreachable (Knuth's Algorithm R). */
static void take_out(uintptr_t key)
{
	unsigned i = slot_of(key);
	while (slots[i].key != key) {
		if (!slots[i].key)
			return;
		i = (i + 1) & (TSTATE_KEYS - 1);
	}
	slot_count--;
	__atomic_store_n(&home_count[slot_of(key)], home_count[slot_of(key)] - 1, __ATOMIC_RELAXED);
	for (unsigned j = (i + 1) & (TSTATE_KEYS - 1); slots[j].key; j = (j + 1) & (TSTATE_KEYS - 1)) {
		unsigned home = slot_of(slots[j].key);
		/* j's entry may move to i if its home is not in (i, j] */
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		__atomic_store_n(&slots[i].tstate, slots[j].tstate, __ATOMIC_RELAXED);
		__atomic_store_n(&slots[i].key, slots[j].key, __ATOMIC_RELAXED);
		i = j;
	}
	__atomic_store_n(&slots[i].key, 0, __ATOMIC_RELAXED);
}

void tstate_table_learn(uintptr_t tstate)
{
	if (tstate < 4096 || tstate_table_find((void *)tstate) == tstate)
		return;
	write_begin();
	if (slot_count + 2 <= TSTATE_KEYS_MAX) {
		put(tstate, tstate);
		put(tstate - DEBUG_ALLOC_HEADER, tstate);
	}
	write_end();
}

void tstate_table_forget(uintptr_t tstate)
{
	write_begin();
	take_out(tstate);
	take_out(tstate - DEBUG_ALLOC_HEADER);
	__atomic_store_n(&tstate_table_generation, tstate_table_generation + 1, __ATOMIC_RELAXED);
	write_end();
}

void tstate_table_reset_in_child(void)
{
	writer_lock = 0; /* the fork may have caught another thread writing */
	if (seq & 1)
		seq++;
}
