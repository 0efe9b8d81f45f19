/*
 * provoke.c: provocations (option provoke=): making finalization's races
 * happen on purpose, on the interpreter as it is, without a rebuild.
 *
 * Design note.  The races giltrace explains are rare because their window
 * is short: a daemon thread must wake up just after its thread state was
 * freed, or just after Py_FinalizeEx() returned.  bpo-39877 was found by
 * widening that window by hand (its slow_exit.patch: a sleep(1) at the end
 * of Py_RunMain, after Py_FinalizeEx()).  Each provocation widens one
 * window, or makes a use of freed memory loud, and each is named in the
 * trace's header (gtr_file_header.provoke), so that every report says the
 * run was provoked.
 *
 *   exit-delay=D   the finalizing thread sleeps D once Python is finalized:
 *                  when Py_FinalizeEx (or Py_Finalize) returns, where the
 *                  wrapper sees it (shared builds, embedding programs:
 *                  wrap-capi.c), else when the process exits (the shim's
 *                  destructor, before the exit event) if the finalizing
 *                  flag was seen set: Debian's static python3.11 calls
 *                  Py_FinalizeEx internally, unseen, and then returns from
 *                  main.  Once per process.
 *   exit-delay-after-free=D
 *                  the thread that frees thread states while the runtime
 *                  is finalizing and it holds the GIL (the finalizing
 *                  thread: in 3.9-3.12 _PyThreadState_DeleteExcept() frees
 *                  every daemon thread's state there, bpo-19466) sleeps D
 *                  at its next GIL release after those frees, once the GIL
 *                  mutex is unlocked, so that the daemon threads may take
 *                  the GIL meanwhile (gh-110052's "danger zone"); if it
 *                  releases the GIL no more (3.8 frees them at the very
 *                  end), it sleeps at process exit instead.  Once per
 *                  process.
 *   poison         a freed thread state (wrap-free.c) is not given back to
 *                  malloc: it is filled with GTR_POISON_WORD and kept, at
 *                  most QUARANTINE_MAX blocks, the oldest released first,
 *                  so that a later use reads the poison (a pointer that
 *                  faults, see trace-format.h) instead of whatever the
 *                  allocator put there.
 *   jitter=N[,seed=S]
 *                  sleeps of 0 to N us at GIL handoffs (after a release,
 *                  once the mutex is unlocked; before a take locks it) and
 *                  after thread-state frees; the n-th sleep of the process
 *                  is provoke_jitter_draw(S, n, N), so a seed gives the
 *                  same sequence of sleeps again (which thread gets which
 *                  one depends on the schedule).  The seed is chosen at
 *                  random when not given; it is in the header.
 *
 * Cost when off: the hooks are behind one test of shim_options.provoke,
 * on paths that are already the shim's slow ones (a GIL mutex, a known
 * thread state's free, Py_FinalizeEx, the exit).
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "provoke-rng.h"
#include "shim.h"

/* The freed thread states kept by poison, oldest first (a ring). */
#define QUARANTINE_MAX 1024u
static void *quarantine[QUARANTINE_MAX];
static unsigned quarantine_head, quarantine_count;
static int quarantine_lock;

/* Set once the one exit delay (resp. after-free delay) was taken. */
static int exit_delay_taken, after_free_delay_taken;
/* The thread that owes the after-free delay: it freed thread states while
 * finalizing, holding the GIL. */
static SHIM_TLS uint8_t after_free_owed;
/* Jitter draws so far, in the process. */
static uint64_t jitter_draws;

/* Sleep ns, whatever signals come; errno kept. */
static void sleep_ns(uint64_t ns)
{
	int saved_errno = errno;
	struct timespec left = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
	while (nanosleep(&left, &left) != 0 && errno == EINTR)
		;
	errno = saved_errno;
}

void provoke_choose_seed(void)
{
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid() << 40;
	}
	/* short enough to type back: 1 to 2^32 - 1 */
	shim_options.provoke_jitter_seed = (seed & 0xffffffffu) ? (seed & 0xffffffffu) : 1;
}

void provoke_write_header(struct gtr_file_header *h)
{
	const struct shim_options *o = &shim_options;
	h->provoke = o->provoke;
	h->provoke_exit_delay_ns = o->provoke & GTR_PROVOKE_EXIT_DELAY ? o->provoke_exit_delay_ns : 0;
	h->provoke_after_free_delay_ns =
	        o->provoke & GTR_PROVOKE_EXIT_DELAY_AFTER_FREE ? o->provoke_after_free_delay_ns : 0;
	h->provoke_jitter_us = o->provoke & GTR_PROVOKE_JITTER ? o->provoke_jitter_us : 0;
	h->provoke_jitter_seed = o->provoke & GTR_PROVOKE_JITTER ? o->provoke_jitter_seed : 0;
}

static void jitter(void)
{
	uint64_t n = __atomic_fetch_add(&jitter_draws, 1, __ATOMIC_RELAXED);
	unsigned us = provoke_jitter_draw(shim_options.provoke_jitter_seed, n, shim_options.provoke_jitter_us);
	if (us)
		sleep_ns((uint64_t)us * 1000u);
}

static void exit_delay(void)
{
	if (!__atomic_exchange_n(&exit_delay_taken, 1, __ATOMIC_RELAXED))
		sleep_ns(shim_options.provoke_exit_delay_ns);
}

static void after_free_delay(void)
{
	after_free_owed = 0;
	if (!__atomic_exchange_n(&after_free_delay_taken, 1, __ATOMIC_RELAXED))
		sleep_ns(shim_options.provoke_after_free_delay_ns);
}

void provoke_after_finalize(void)
{
	if (provoking(GTR_PROVOKE_EXIT_DELAY))
		exit_delay();
}

void provoke_at_exit(void)
{
	if (provoking(GTR_PROVOKE_EXIT_DELAY_AFTER_FREE) && after_free_owed)
		after_free_delay();
	if (provoking(GTR_PROVOKE_EXIT_DELAY) && gil_model_finalizing())
		exit_delay();
}

void provoke_tstate_freed(void)
{
	if (provoking(GTR_PROVOKE_EXIT_DELAY_AFTER_FREE) && shim_self.gil_held && gil_model_finalizing() &&
	    !__atomic_load_n(&after_free_delay_taken, __ATOMIC_RELAXED))
		after_free_owed = 1;
	if (provoking(GTR_PROVOKE_JITTER))
		jitter();
}

void provoke_after_gil_release(void)
{
	if (after_free_owed)
		after_free_delay();
	if (provoking(GTR_PROVOKE_JITTER))
		jitter();
}

void provoke_before_gil_take(void)
{
	jitter();
}

void *provoke_quarantine(void *block, size_t size)
{
	static const uint64_t word = GTR_POISON_WORD;
	unsigned char *p = block;
	for (size_t i = 0; i < size; i++)
		p[i] = ((const unsigned char *)&word)[i % sizeof word];
	void *oldest = NULL;
	while (__atomic_exchange_n(&quarantine_lock, 1, __ATOMIC_ACQUIRE))
		__builtin_ia32_pause();
	unsigned tail = (quarantine_head + quarantine_count) % QUARANTINE_MAX;
	if (quarantine_count == QUARANTINE_MAX) {
		oldest = quarantine[quarantine_head];
		quarantine_head = (quarantine_head + 1) % QUARANTINE_MAX;
	} else {
		quarantine_count++;
	}
	quarantine[tail] = block;
	__atomic_store_n(&quarantine_lock, 0, __ATOMIC_RELEASE);
	return oldest;
}

void provoke_reset_in_child(void)
{
	/* Another thread of the parent may have held the lock at the fork, in
	 * the middle of an update: the child forgets the quarantine (its
	 * blocks stay allocated: at most QUARANTINE_MAX thread states) rather
	 * than trust a torn queue. */
	quarantine_head = quarantine_count = 0;
	__atomic_store_n(&quarantine_lock, 0, __ATOMIC_RELEASE);
}
