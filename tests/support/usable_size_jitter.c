/*
 * A preload library for tests/test_subinterp.py, loaded after the shim: its
 * free() flips a bit per block (hashed by address), and malloc_usable_size()
 * answers 16 bytes more while the bit is set.  So one block's usable size
 * differs from one life to the next, as glibc's does when a request gets a
 * whole free chunk rather than a split one (a 336-byte calloc at the same
 * address: 344 usable bytes one time, 360 the next).  Nothing but the shim
 * asks for usable sizes in the tested programs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

extern void __libc_free(void *);

static unsigned char flipped[1u << 16];

static unsigned slot_of(const void *p)
{
	return (unsigned)(((uintptr_t)p >> 4) * UINT64_C(0x9e3779b97f4a7c15) >> 48);
}

void free(void *p)
{
	if (p)
		__atomic_xor_fetch(&flipped[slot_of(p)], 1, __ATOMIC_RELAXED);
	__libc_free(p);
}

size_t malloc_usable_size(void *p)
{
	static size_t (*real)(void *);
	if (!real)
		real = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	if (!p || !real)
		return 0;
	return real(p) + (__atomic_load_n(&flipped[slot_of(p)], __ATOMIC_RELAXED) ? 16 : 0);
}
