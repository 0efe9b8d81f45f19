/*
 * mutex-pair.c: cost of one pthread_mutex_lock/unlock pair on a mutex that
 * is not a GIL, in a process where the shim is active.
 *
 * To make the shim active without CPython, this program exports a
 * `_PyRuntime` symbol (link with -rdynamic) and initialises a GIL-shaped
 * object inside it in create_gil()'s order (docs/cpython-internals.md §1): the
 * shim recognises it and starts tracing, so the pair below takes the same
 * fast path as any non-GIL mutex in a traced python.
 *
 * usage: mutex-pair ITERATIONS        prints "ns_per_pair <float>"
 *        mutex-pair gil ITERATIONS    one take_gil/drop_gil cycle on the fake
 *                                     GIL per iteration, as CPython does it
 *                                     (3 events traced: take, acquire,
 *                                     release); prints "ns_per_cycle <float>"
 *        mutex-pair free ITERATIONS   one malloc(64)/free pair per iteration:
 *                                     free() of a block that is not a thread
 *                                     state; prints "ns_per_free <float>"
 *        mutex-pair free-waiting K ITERATIONS
 *                                     the same after the shim learned K
 *                                     thread-state-sized blocks (the fake
 *                                     GIL's holder) and saw them freed: they
 *                                     wait for reuse (shim/wrap-alloc.c)
 *        mutex-pair park ITERATIONS   one park's semaphore calls per iteration,
 *                                     as CPython 3.13+'s parking lot makes
 *                                     them (Python/parking_lot.c), already
 *                                     posted so that the wait never sleeps:
 *                                     sem_init(0), sem_post, sem_wait (2
 *                                     events traced: block-begin, block-end),
 *                                     sem_destroy; prints "ns_per_park <float>"
 *        mutex-pair sem ITERATIONS    the same on a semaphore made with
 *                                     value 1 (a PyThread lock's shape, no
 *                                     event): the calls' own cost
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Stands in for CPython's runtime: the GIL lives inside it. */
__attribute__((visibility("default"), aligned(64))) unsigned char _PyRuntime[4096];

static unsigned char *const gil = _PyRuntime + 512;
#define GIL_LOCKED (*(volatile int *)(gil + 16))
#define GIL_HOLDER (*(void *volatile *)(gil + 8))
#define GIL_COND ((pthread_cond_t *)(gil + 32))
#define GIL_MUTEX ((pthread_mutex_t *)(gil + 80))
#define GIL_SWITCH_COND ((pthread_cond_t *)(gil + 120))
#define GIL_SWITCH_MUTEX ((pthread_mutex_t *)(gil + 168))

static void create_fake_gil(void)
{
	*(int *)(gil + 16) = -1; /* locked: not created yet */
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_mutex_init((pthread_mutex_t *)(gil + 80), NULL);
	pthread_mutex_init((pthread_mutex_t *)(gil + 168), NULL);
	pthread_cond_init((pthread_cond_t *)(gil + 32), &attr);
	pthread_cond_init((pthread_cond_t *)(gil + 120), &attr);
	*(int *)(gil + 16) = 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* take_gil() then drop_gil(), uncontended (docs/cpython-internals.md §2). */
static void gil_cycle(void)
{
	pthread_mutex_lock(GIL_MUTEX);
	pthread_mutex_lock(GIL_SWITCH_MUTEX);
	GIL_LOCKED = 1;
	if (!GIL_HOLDER)
		GIL_HOLDER = _PyRuntime; /* a stand-in thread state */
	pthread_cond_signal(GIL_SWITCH_COND);
	pthread_mutex_unlock(GIL_SWITCH_MUTEX);
	pthread_mutex_unlock(GIL_MUTEX);

	pthread_mutex_lock(GIL_MUTEX);
	GIL_LOCKED = 0;
	pthread_cond_signal(GIL_COND);
	pthread_mutex_unlock(GIL_MUTEX);
}

int main(int argc, char **argv)
{
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	create_fake_gil();
	if (argc > 1 && strcmp(argv[1], "gil") == 0) {
		long n = argc > 2 ? atol(argv[2]) : 5000000;
		double t0 = now();
		for (long i = 0; i < n; i++)
			gil_cycle();
		printf("ns_per_cycle %.3f\n", (now() - t0) * 1e9 / (double)n);
		return 0;
	}
	if (argc > 1 && (strcmp(argv[1], "free") == 0 || strcmp(argv[1], "free-waiting") == 0)) {
		int waiting = strcmp(argv[1], "free-waiting") == 0;
		int k = waiting && argc > 2 ? atoi(argv[2]) : 0;
		void *freed[256];
		for (int i = 0; i < k && i < 256; i++) {
			freed[i] = malloc(336); /* 3.13's thread-state size */
			GIL_HOLDER = freed[i];
			gil_cycle();
		}
		GIL_HOLDER = NULL;
		for (int i = 0; i < k && i < 256; i++)
			free(freed[i]);
		long n = argc > 2 + waiting ? atol(argv[2 + waiting]) : 20000000;
		double t0 = now();
		for (long i = 0; i < n; i++) {
			void *volatile p = malloc(64);
			free(p);
		}
		printf("ns_per_free %.3f\n", (now() - t0) * 1e9 / (double)n);
		return 0;
	}
	if (argc > 1 && (strcmp(argv[1], "park") == 0 || strcmp(argv[1], "sem") == 0)) {
		unsigned value = strcmp(argv[1], "sem") == 0;
		long n = argc > 2 ? atol(argv[2]) : 5000000;
		double t0 = now();
		for (long i = 0; i < n; i++) {
			sem_t sem;
			sem_init(&sem, 0, value);
			if (!value)
				sem_post(&sem);
			sem_wait(&sem);
			sem_destroy(&sem);
		}
		printf("ns_per_park %.3f\n", (now() - t0) * 1e9 / (double)n);
		return 0;
	}
	long n = argc > 1 ? atol(argv[1]) : 50000000;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&m);
		pthread_mutex_unlock(&m);
	}
	double t1 = now();
	printf("ns_per_pair %.3f\n", (t1 - t0) * 1e9 / (double)n);
	return 0;
}
