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
 *
 * Reuse.  A block of the thread-state size is not a thread state until one
 * of the above confirms it, except in one case: an allocation that returns
 * the block of a thread state freed earlier, of the same size (below).
 * CPython makes thread states that no wrapper sees (_PyThreadState_NewBound,
 * _PyThreadState_New: not exported), and malloc hands the block just freed
 * to the next request of its size, so a new thread state often starts where
 * the last one ended, on the same thread: 3.13's import_run_extension()
 * deletes a temporary thread state of the main interpreter and makes the
 * next one at the same address for every single-phase module a
 * subinterpreter imports.  Without seeing that allocation, the next
 * PyThreadState_Swap() with the new one looks like a use of the freed one.
 * So each freed thread state waits here (its block and usable size, a
 * bounded set) until malloc/calloc (wrap-alloc.c) return that block again
 * for a request of the same size: that is recorded (GTR_EV_TSTATE_REUSE) and
 * the block is known as a thread state again, so that its next free is
 * recorded too.  "The same size": the new block's usable size is the freed
 * one's, or the bytes asked for fit the freed block with less than 32 to
 * spare.  glibc gives a request the whole free chunk when the rest would be
 * smaller than its 32-byte minimum, so one calloc(1, 336) may get 344 usable
 * bytes and the next, at the same address, 360 (seen in CPython's
 * test_capi: a false freed-tstate-use when only equal usable sizes
 * counted); allocators with coarser classes (jemalloc) give equal usable
 * sizes.  CPython's new_threadstate() callocs a block and frees it unused when
 * an interpreter's first thread state is its embedded one (gh-96071): such a
 * block gets a REUSE and a FREE.  A block of the same size that is not a
 * thread state (a buffer malloc'd and freed in a loop) would do so on every
 * iteration: so an entry learned from a reuse stays "unconfirmed" until a
 * GIL acquisition or a C-API call shows the thread state, its free records
 * no stack, and after REUSE_UNCONFIRMED_MAX reuses in a row with nothing
 * confirming, the block is no longer watched.  The set keeps REUSE_BUCKETS
 * * REUSE_WAYS freed thread states; when a bucket is full the oldest entry
 * of it is dropped, and a reuse of that block goes unseen.  A long test run
 * (test_threading, test_capi on 3.13) keeps about a hundred waiting, most
 * of them blocks that other objects took: 4 ways overflowed about fifty
 * times there, 8 rarely do.
 */
#include <malloc.h>

#include "cpython-layout.h"
#include "shim.h"

/* TSTATE_KEYS (shim.h): slots, a power of two */
#define TSTATE_KEYS_MAX (TSTATE_KEYS / 4 * 3)

struct tstate_slot {
	uintptr_t key;               /* 0: empty */
	uintptr_t tstate;
	unsigned unconfirmed;        /* learned from reuses only: how many in a row */
};

static struct tstate_slot slots[TSTATE_KEYS];
/* Keys per home slot: free() looks here first (8 KiB, stays in cache;
 * tstate_table_maybe_known) and probes the table only when the count is
 * not zero. */
uint16_t tstate_home_count[TSTATE_KEYS];
#define home_count tstate_home_count
static unsigned slot_count;
static unsigned seq;                 /* odd while a writer changes slots */
static int writer_lock;

/* Bumped on every removal: a thread's cached "known" tstate is stale then. */
unsigned tstate_table_generation;

static inline unsigned slot_of(uintptr_t key)
{
	return tstate_slot_of(key);
}

/* The slot of key, or NULL. */
static const struct tstate_slot *probe(uintptr_t key)
{
	for (unsigned i = slot_of(key), n = 0; n < TSTATE_KEYS; i = (i + 1) & (TSTATE_KEYS - 1), n++) {
		uintptr_t k = __atomic_load_n(&slots[i].key, __ATOMIC_RELAXED);
		if (k == key)
			return &slots[i];
		if (k == 0)
			return NULL;
	}
	return NULL;
}

uintptr_t tstate_table_find_entry(const void *block, unsigned *unconfirmed)
{
	uintptr_t key = (uintptr_t)block, found;
	unsigned before;
	*unconfirmed = 0;
	if (likely(!tstate_table_maybe_known(block)))
		return 0;
	do {
		while ((before = __atomic_load_n(&seq, __ATOMIC_ACQUIRE)) & 1)
			__builtin_ia32_pause();
		const struct tstate_slot *slot = probe(key);
		found = slot ? __atomic_load_n(&slot->tstate, __ATOMIC_RELAXED) : 0;
		*unconfirmed = slot ? __atomic_load_n(&slot->unconfirmed, __ATOMIC_RELAXED) : 0;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (__atomic_load_n(&seq, __ATOMIC_RELAXED) != before);
	return found;
}

uintptr_t tstate_table_find(const void *block)
{
	unsigned unconfirmed;
	return tstate_table_find_entry(block, &unconfirmed);
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

static void put(uintptr_t key, uintptr_t tstate, unsigned unconfirmed)
{
	unsigned i = slot_of(key);
	while (slots[i].key && slots[i].key != key)
		i = (i + 1) & (TSTATE_KEYS - 1);
	if (!slots[i].key) {
		slot_count++;
		__atomic_store_n(&home_count[slot_of(key)], home_count[slot_of(key)] + 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&slots[i].tstate, tstate, __ATOMIC_RELAXED);
	__atomic_store_n(&slots[i].unconfirmed, unconfirmed, __ATOMIC_RELAXED);
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
		__atomic_store_n(&slots[i].unconfirmed, slots[j].unconfirmed, __ATOMIC_RELAXED);
		__atomic_store_n(&slots[i].key, slots[j].key, __ATOMIC_RELAXED);
		i = j;
	}
	__atomic_store_n(&slots[i].key, 0, __ATOMIC_RELAXED);
}

/* `unconfirmed`: 0 for a thread state something showed to be one (it then
 * confirms an entry learned from reuses); else the count of reuses in a
 * row, for an entry that does not exist yet. */
static void learn(uintptr_t tstate, unsigned unconfirmed)
{
	unsigned known_unconfirmed;
	if (tstate < 4096)
		return;
	bool known = tstate_table_find_entry((void *)tstate, &known_unconfirmed) == tstate;
	if (known && (unconfirmed || !known_unconfirmed))
		return;
	write_begin();
	if (known || slot_count + 2 <= TSTATE_KEYS_MAX) {
		put(tstate, tstate, unconfirmed);
		put(tstate - DEBUG_ALLOC_HEADER, tstate, unconfirmed);
	}
	write_end();
}

void tstate_table_learn(uintptr_t tstate)
{
	learn(tstate, 0);
}

void tstate_table_learn_reused(uintptr_t tstate, unsigned unconfirmed)
{
	learn(tstate, unconfirmed ? unconfirmed : 1);
}

void tstate_table_forget(uintptr_t tstate)
{
	write_begin();
	take_out(tstate);
	take_out(tstate - DEBUG_ALLOC_HEADER);
	__atomic_store_n(&tstate_table_generation, tstate_table_generation + 1, __ATOMIC_RELAXED);
	write_end();
}

/* ---- freed thread states awaiting reuse (see "Reuse" above) ------------------ */

/* REUSE_BUCKETS, REUSE_WAYS (shim.h): one bit each in tstate_reuse_buckets */
/* Reuses in a row with nothing showing a thread state there: then the
 * block is no longer watched (see "Reuse" above). */
#define REUSE_UNCONFIRMED_MAX 3u

/* The freed blocks, by bucket: 0 empty.  Read without the lock
 * (tstate_table_awaits) by allocations whose bucket bit is set. */
uintptr_t tstate_reuse_block[REUSE_BUCKETS][REUSE_WAYS] __attribute__((aligned(64)));
#define reuse_block tstate_reuse_block
/* What each freed block was: the thread state (the block, or 16 bytes
 * above it under the debug allocator) and malloc_usable_size() of it. */
static struct reuse_info {
	uintptr_t tstate;
	size_t usable;
	uint64_t age;                /* reuse_clock at insertion: the oldest goes */
	unsigned unconfirmed;        /* of the freed entry (tstate_slot) */
} reuse_info[REUSE_BUCKETS][REUSE_WAYS];
static uint64_t reuse_clock;
/* Serialises changes of the set (rare: a thread-state free, a reuse). */
static int reuse_lock;

/* Bit b set: bucket b holds a block.  The allocation wrappers read only
 * this while it is zero, and test their block's bit otherwise. */
uint64_t tstate_reuse_buckets __attribute__((aligned(64)));

static inline unsigned reuse_bucket_of(uintptr_t block)
{
	return tstate_reuse_bucket_of((const void *)block);
}

/* With reuse_lock held. */
static void reuse_bucket_changed(unsigned b)
{
	bool used = false;
	for (unsigned w = 0; w < REUSE_WAYS; w++)
		used |= reuse_block[b][w] != 0;
	uint64_t bit = UINT64_C(1) << b, now = tstate_reuse_buckets;
	__atomic_store_n(&tstate_reuse_buckets, used ? now | bit : now & ~bit, __ATOMIC_RELAXED);
}

static void reuse_lock_take(void)
{
	while (__atomic_exchange_n(&reuse_lock, 1, __ATOMIC_ACQUIRE))
		__builtin_ia32_pause();
}

static void reuse_lock_drop(void)
{
	__atomic_store_n(&reuse_lock, 0, __ATOMIC_RELEASE);
}

/* Called by free() before the real free, so that the entry is in place
 * before any allocation can return the block (the allocator's own
 * synchronisation orders the two). */
void tstate_table_await_reuse(const void *block, uintptr_t tstate, unsigned unconfirmed)
{
	if (unconfirmed >= REUSE_UNCONFIRMED_MAX)
		return;
	uintptr_t key = (uintptr_t)block;
	size_t usable = malloc_usable_size((void *)block);
	unsigned b = reuse_bucket_of(key), way = REUSE_WAYS, oldest = 0;
	reuse_lock_take();
	for (unsigned w = 0; w < REUSE_WAYS && way == REUSE_WAYS; w++)
		if (reuse_block[b][w] == key)
			way = w;
	for (unsigned w = 0; w < REUSE_WAYS && way == REUSE_WAYS; w++)
		if (!reuse_block[b][w])
			way = w;
	if (way == REUSE_WAYS) { /* full: the oldest entry goes */
		for (unsigned w = 1; w < REUSE_WAYS; w++)
			if (reuse_info[b][w].age < reuse_info[b][oldest].age)
				oldest = w;
		way = oldest;
	}
	reuse_info[b][way] = (struct reuse_info){ tstate, usable, ++reuse_clock, unconfirmed };
	__atomic_store_n(&reuse_block[b][way], key, __ATOMIC_RELAXED);
	reuse_bucket_changed(b);
	reuse_lock_drop();
}

/* A request of `size` bytes that got `usable` may be a thread state like
 * the one freed from a block of `freed_usable` ("The same size" above). */
static bool same_size(size_t size, size_t usable, size_t freed_usable)
{
	return usable == freed_usable || (size <= freed_usable && size + 32 > freed_usable);
}

uintptr_t tstate_table_claim_reuse(const void *block, size_t size, unsigned *unconfirmed)
{
	uintptr_t key = (uintptr_t)block, tstate = 0;
	size_t usable = malloc_usable_size((void *)block);
	unsigned b = reuse_bucket_of(key);
	*unconfirmed = 0;
	reuse_lock_take();
	for (unsigned w = 0; w < REUSE_WAYS; w++) {
		if (reuse_block[b][w] != key)
			continue;
		/* Another size: the block holds something else now; the entry
		 * stays for when it is freed and allocated again. */
		if (same_size(size, usable, reuse_info[b][w].usable)) {
			tstate = reuse_info[b][w].tstate;
			*unconfirmed = reuse_info[b][w].unconfirmed;
			__atomic_store_n(&reuse_block[b][w], 0, __ATOMIC_RELAXED);
			reuse_bucket_changed(b);
		}
		break;
	}
	reuse_lock_drop();
	return tstate;
}

void tstate_table_reset_in_child(void)
{
	writer_lock = 0; /* the fork may have caught another thread writing */
	if (seq & 1)
		seq++;
	reuse_lock = 0;
}
