/*
 * wrap-alloc.c: the malloc() and calloc() interposers: when a freed
 * thread state's block becomes a thread state again.
 *
 * Design note.  Thread states come from PyMem_RawMalloc/PyMem_RawCalloc:
 * libc's malloc()/calloc() through the PLT in every build, with a 16-byte
 * header in front under CPython's debug allocator (docs/cpython-internals.md
 * §4).  CPython makes some of them in functions no wrapper sees
 * (_PyThreadState_New, _PyThreadState_NewBound), and glibc hands the block
 * of a thread state just freed to the next request of its size: 3.13's
 * import_run_extension() deletes a temporary thread state and makes the
 * next one at the same address, on the same thread, each time a
 * subinterpreter imports a single-phase module.  The allocation is the
 * only evidence that the thread state passed to PyThreadState_Swap() next
 * is a new one and not the freed one.  So while a freed thread state waits
 * for reuse (tstate-table.c, "Reuse"), every block malloc/calloc return is
 * compared with the waiting ones; a match of the same size is
 * recorded (GTR_EV_TSTATE_REUSE: the thread state, the bytes asked for)
 * and the thread state is known again, unconfirmed, so that its free is
 * recorded too (tstate-table.c says how a block that keeps coming back
 * without being a thread state stops being watched).
 *
 * The cost: while no freed thread state waits (every process that is not a
 * traced python, and a traced one until its first thread state is freed),
 * one load and compare before a tail call of the real function; while some
 * wait, the returned block's bit in a 64-bit mask of bucket groups is
 * tested after the call, and only a set bit (about one block in 64 per
 * waiting thread state) compares the 8 entries of its group
 * (docs/performance.md has the numbers).
 *
 * Races: which groups hold waiting blocks is read before the real call, so
 * a thread state that another thread frees at that very moment, and whose
 * block this call returns, is not seen reused.  Only a reuse across
 * threads can be missed that way, and a missed reuse errs towards
 * reporting a use, never towards hiding one; a reuse on the thread that
 * freed the block (the 3.13 import case) is always seen.
 *
 * What it cannot see: blocks returned by realloc, memalign and the like
 * (CPython never makes a thread state with them; such a block stays
 * waiting), and allocations that do not reach this wrapper (another
 * preloaded allocator ahead of the shim that calls glibc's __libc_malloc).
 *
 * Bootstrap: the real functions are found with dlsym(RTLD_NEXT), which may
 * itself call calloc() or malloc() (glibc before 2.34 callocs its dlerror
 * state).  Such a call, made while this thread resolves, is served from a
 * static arena (LTTng-UST's bump allocator): zeroed, never reused, and
 * free() (wrap-free.c) skips its blocks.  A realloc() of one would reach
 * libc with a block libc does not own; dlsym does not do that.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>

#include "shim.h"

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
/* volatile: the store before dlsym() must stay (see wrap-free.c). */
static SHIM_TLS volatile int resolving_alloc;

/* The bootstrap arena (free() skips its blocks: alloc_is_early()) and how
 * much of it is handed out. */
unsigned char alloc_early_arena[ALLOC_EARLY_ARENA_SIZE] __attribute__((aligned(16)));
static size_t early_used;

/* glibc's own entry points: the fallback if dlsym() found nothing, so that
 * the program never runs on the bootstrap arena alone. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);

/* Resolve the real functions; idempotent.  Called by the first allocation
 * (usually long before the constructor) and by the constructor. */
static void alloc_resolve(void)
{
	if ((real_malloc && real_calloc) || resolving_alloc)
		return;
	resolving_alloc = 1;
	void *(*m)(size_t) = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	void *(*c)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	resolving_alloc = 0;
	m = m ? m : __libc_malloc;
	c = c ? c : __libc_calloc;
	__atomic_store_n(&real_calloc, c, __ATOMIC_RELEASE);
	__atomic_store_n(&real_malloc, m, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void alloc_constructor(void)
{
	int saved_errno = errno;
	alloc_resolve();
	errno = saved_errno;
}

/* An allocation made while the real functions are unknown: zeroed memory
 * from the arena, or NULL (ENOMEM) once the arena is used up. */
static void *early_alloc(size_t size)
{
	if (size > sizeof alloc_early_arena) {
		errno = ENOMEM;
		return NULL;
	}
	size_t need = (size + 15) & ~(size_t)15;
	size_t at = __atomic_fetch_add(&early_used, need, __ATOMIC_RELAXED);
	if (at + need > sizeof alloc_early_arena) {
		errno = ENOMEM;
		return NULL;
	}
	return alloc_early_arena + at;
}

/* A block just allocated that is a waiting one: claim it if its size fits.
 * Out of line: rare. */
__attribute__((noinline)) static void alloc_check_reuse(void *block, size_t size)
{
	if (!block || !shim_enter())
		return;
	int saved_errno = errno;
	unsigned unconfirmed;
	uintptr_t tstate = tstate_table_claim_reuse(block, size, &unconfirmed);
	if (tstate) {
		uint64_t payload[2] = { tstate, size };
		recorder_emit(GTR_EV_TSTATE_REUSE, 0, payload);
		tstate_table_learn_reused(tstate, unconfirmed + 1);
	}
	errno = saved_errno;
	shim_leave();
}

/* Before the real functions are known: resolve them, or serve the
 * bootstrap arena.  Out of line, so that the wrappers need no stack frame
 * in the usual case. */
__attribute__((noinline)) static void *malloc_early(size_t size)
{
	alloc_resolve();
	return real_malloc ? malloc(size) : early_alloc(size);
}

__attribute__((noinline)) static void *calloc_early(size_t count, size_t size)
{
	alloc_resolve();
	if (real_calloc)
		return calloc(count, size);
	size_t total;
	if (__builtin_mul_overflow(count, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return early_alloc(total); /* static, so already zero */
}

/* While no thread state waits, a tail call.  Which buckets hold waiting
 * blocks is read before the call: see "Races" above. */
SHIM_EXPORT void *malloc(size_t size)
{
	if (unlikely(!real_malloc))
		return malloc_early(size);
	uint64_t waiting = __atomic_load_n(&tstate_reuse_buckets, __ATOMIC_RELAXED);
	if (likely(!waiting))
		return real_malloc(size);
	void *block = real_malloc(size);
	if (unlikely(waiting >> tstate_reuse_bucket_of(block) & 1) && tstate_table_awaits(block))
		alloc_check_reuse(block, size);
	return block;
}

SHIM_EXPORT void *calloc(size_t count, size_t size)
{
	if (unlikely(!real_calloc))
		return calloc_early(count, size);
	uint64_t waiting = __atomic_load_n(&tstate_reuse_buckets, __ATOMIC_RELAXED);
	if (likely(!waiting))
		return real_calloc(count, size);
	void *block = real_calloc(count, size);
	if (unlikely(waiting >> tstate_reuse_bucket_of(block) & 1) && tstate_table_awaits(block))
		alloc_check_reuse(block, count * size); /* no overflow: it succeeded */
	return block;
}
