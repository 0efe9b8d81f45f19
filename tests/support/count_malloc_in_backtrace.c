/*
 * A preload library for tests/test_stacks.py: wraps glibc's backtrace() and
 * counts the malloc-family calls made while it runs, on the same thread.
 * The first backtrace() of the process loads libgcc_s and may allocate; the
 * shim makes that call at activation, so only the later ones are counted.
 * At exit it writes "backtrace_calls=N mallocs_inside=M" to the file named
 * by COUNT_MALLOC_OUT.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static __thread int inside;
static unsigned long calls, mallocs_inside;

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

void *malloc(size_t n)
{
	if (inside)
		__atomic_add_fetch(&mallocs_inside, 1, __ATOMIC_RELAXED);
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	if (inside)
		__atomic_add_fetch(&mallocs_inside, 1, __ATOMIC_RELAXED);
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	if (inside)
		__atomic_add_fetch(&mallocs_inside, 1, __ATOMIC_RELAXED);
	return __libc_realloc(p, n);
}

int backtrace(void **buffer, int size)
{
	static int (*real)(void **, int);
	if (!real)
		real = (int (*)(void **, int))dlsym(RTLD_NEXT, "backtrace");
	unsigned long n = __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
	inside = n > 0;
	int got = real(buffer, size);
	inside = 0;
	return got;
}

__attribute__((destructor)) static void report(void)
{
	const char *path = getenv("COUNT_MALLOC_OUT");
	FILE *f = path ? fopen(path, "w") : NULL;
	if (!f)
		return;
	fprintf(f, "backtrace_calls=%lu mallocs_inside=%lu\n", calls, mallocs_inside);
	fclose(f);
}
