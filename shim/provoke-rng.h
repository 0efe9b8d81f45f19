/*
 * provoke-rng.h: the delays of provoke=jitter, a pure function of the seed
 * and the draw's number, so that a seed recorded in a trace's header gives
 * the same sequence of delays again (tests/unit/test-provoke-rng.c).
 */
#ifndef GILTRACE_PROVOKE_RNG_H
#define GILTRACE_PROVOKE_RNG_H

#include <stdint.h>

/* The n-th delay (n from 0) of the seed, 0 to max_us microseconds:
 * SplitMix64 of seed + (n + 1) times the golden ratio, counter-based, so
 * that draws need no shared state but their number. */
static inline unsigned provoke_jitter_draw(uint64_t seed, uint64_t n, unsigned max_us)
{
	uint64_t z = seed + (n + 1) * UINT64_C(0x9e3779b97f4a7c15);
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	z ^= z >> 31;
	return (unsigned)(z % ((uint64_t)max_us + 1));
}

#endif
