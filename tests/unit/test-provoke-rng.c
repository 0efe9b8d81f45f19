/*
 * test-provoke-rng.c: provoke=jitter's delays are a function of the seed
 * and the draw's number only (shim/provoke-rng.h), so that the seed a
 * trace's header records gives the same delays again.  Built and run by
 * tests/test_provoke.py; prints "ok" and exits 0 when every check holds.
 */
#include <stdio.h>

#include "../../shim/provoke-rng.h"

#define DRAWS 10000

int main(void)
{
	unsigned a[DRAWS], max_seen = 0, zeros = 0, differ = 0;
	for (unsigned n = 0; n < DRAWS; n++) {
		a[n] = provoke_jitter_draw(1234, n, 50);
		if (a[n] > 50) {
			printf("draw %u is %u, past the 50 us asked for\n", n, a[n]);
			return 1;
		}
		max_seen = a[n] > max_seen ? a[n] : max_seen;
		zeros += a[n] == 0;
	}
	for (unsigned n = 0; n < DRAWS; n++) {
		if (provoke_jitter_draw(1234, n, 50) != a[n]) {
			printf("draw %u of seed 1234 changed\n", n);
			return 1;
		}
		differ += provoke_jitter_draw(1235, n, 50) != a[n];
	}
	/* uniform enough: every value up to 50 reachable, 0 about 1 in 51 */
	if (max_seen != 50 || zeros < DRAWS / 51 / 2 || zeros > DRAWS / 51 * 2 || differ < DRAWS / 2) {
		printf("poor spread: max %u, zeros %u, differing from seed 1235 %u\n", max_seen, zeros, differ);
		return 1;
	}
	if (provoke_jitter_draw(7, 0, 0) != 0) {
		puts("jitter=0 must not sleep");
		return 1;
	}
	for (unsigned n = 0; n < 8; n++)
		printf("%u%c", provoke_jitter_draw(1234, n, 50), n == 7 ? '\n' : ' ');
	puts("ok");
	return 0;
}
