/*
 * wrap-free.c: the free() interposer: when a known thread state dies.
 *
 * Design note.  PyThreadState objects are allocated with PyMem_RawMalloc/
 * Calloc and released with PyMem_RawFree: libc's free() through the PLT in
 * every build (docs/cpython-internals.md §4), so this interposer sees every
 * thread state's end, on static and shared builds alike.  A free of a
 * known thread state (tstate-table.c) is recorded with the freeing thread;
 * the finalizing flag is sampled first, so the trace pins the start of
 * finalization no later than the first thread state it frees.
 *
 * The freed block then waits for its reuse (tstate-table.c, "Reuse"): a
 * new thread state that CPython makes where the freed one was, which
 * wrap-alloc.c sees allocated.
 *
 * The cost on every other free(), before a tail call of the real one: one
 * compare for the blocks wrap-alloc.c handed out while it resolved malloc
 * and calloc (a static arena that never reaches the real free()), the
 * lifecycle word, and one load in an 8 KiB count table that stays in cache
 * (tstate_table_maybe_known; docs/performance.md).  Everything else is out
 * of line, so that free() itself needs no stack frame.
 *
 * provoke= (provoke.c) acts here, after the free of a known thread state
 * was recorded: poison keeps the block instead of freeing it; jitter and
 * exit-delay-after-free may sleep after it.
 *
 * Bootstrap: dlsym() may itself free memory while the shim is resolving
 * the real free().  Such a block is leaked (once per process, a few bytes)
 * rather than handed to a free() that is not known yet.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>

#include "shim.h"

extern void __libc_free(void *);

static void (*real_free)(void *);
/* volatile: the store before dlsym() must not be optimised away (dlsym
 * cannot see this static, but it calls back into free()). */
static SHIM_TLS volatile int resolving_free;

/* `unconfirmed`: see tstate_table_find_entry(); such a free gets no stack
 * (a block that keeps coming back at a freed thread state's address may
 * be a buffer freed in a loop). */
static void tstate_freed(void *block, uintptr_t tstate, unsigned unconfirmed)
{
	if (!shim_enter())
		return;
	int saved_errno = errno;
	gil_model_check_finalizing();
	uint64_t payload = tstate;
	stack_emit_if(!unconfirmed && stack_wanted(STACKS_FREE), GTR_EV_TSTATE_FREE, 0, &payload);
	tstate_table_forget(tstate);
	tstate_table_await_reuse(block, tstate, unconfirmed);
	errno = saved_errno;
	shim_leave();
}

/* Called by the constructor; again by the first free() if that comes
 * earlier (another library's constructor). */
void free_resolve(void)
{
	if (real_free || resolving_free)
		return;
	resolving_free = 1;
	void (*found)(void *) = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	resolving_free = 0;
	/* glibc's own entry point if dlsym() found nothing: never leak for good */
	__atomic_store_n(&real_free, found ? found : __libc_free, __ATOMIC_RELEASE);
}

/* Everything but the usual case, out of line so that free() needs no stack
 * frame: resolution, a known thread state, a bootstrap block. */
__attribute__((noinline)) static void free_unusual(void *block)
{
	if (!real_free) {
		free_resolve();
		if (!real_free)
			return; /* see "Bootstrap" above */
	}
	uintptr_t tstate = 0;
	if (shim_state == SHIM_ACTIVE && block) {
		unsigned unconfirmed;
		tstate = tstate_table_find_entry(block, &unconfirmed);
		if (tstate)
			tstate_freed(block, tstate, unconfirmed);
	}
	if (alloc_is_early(block))
		return; /* see wrap-alloc.c, "Bootstrap" */
	if (tstate && provoking(GTR_PROVOKE_POISON)) {
		/* provoke=poison: kept, filled, the oldest kept one goes */
		int saved_errno = errno;
		block = provoke_quarantine(block, malloc_usable_size(block));
		errno = saved_errno;
	}
	if (block)
		real_free(block);
	if (tstate && provoking(GTR_PROVOKE_JITTER | GTR_PROVOKE_EXIT_DELAY_AFTER_FREE))
		provoke_tstate_freed();
}

/* The usual case is a tail call. */
SHIM_EXPORT void free(void *block)
{
	if (likely(real_free && !alloc_is_early(block) &&
	           (shim_state != SHIM_ACTIVE || !tstate_table_maybe_known(block))))
		return real_free(block);
	free_unusual(block);
}
