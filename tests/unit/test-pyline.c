/*
 * test-pyline.c: shim/pyline.c against an interpreter's own answers
 * (tests/support/pyline_cases.py prints them; tests/test_pyline.py pipes
 * them in), and against random tables.
 *   ./test-pyline < cases.txt            verify every "A" line, then
 *                                   re-run every table truncated at each
 *                                   length (safety only, ASan catches OOB)
 *   ./test-pyline --fuzz N              N random tables per format (safety)
 * Each table is copied into an exact-size malloc() block so that ASan
 * flags any read past table+len.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pyline.h"

static unsigned char *dup_exact(const unsigned char *p, size_t n)
{
	unsigned char *q = malloc(n ? n : 1);

	if (!q)
		abort();
	memcpy(q, p, n);
	return q;
}

static void torture(unsigned fmt, const unsigned char *t, size_t len,
		    int first, int maxaddr)
{
	size_t lstep = len / 64 + 1;
	int astep = (maxaddr / 64 + 1) * 2;

	for (size_t l = 0; l <= len; l += (l + 2 >= len ? 1 : lstep)) {
		unsigned char *c = dup_exact(t, l);

		for (int a = -4; a <= maxaddr + 4; a += astep)
			(void)pyline_from_table(fmt, c, l, first, a);
		(void)pyline_from_table(fmt, c, l, first, maxaddr);
		free(c);
	}
}

static int fuzz(long n)
{
	static unsigned char buf[256];

	srand(12345);
	for (long k = 0; k < n; k++) {
		size_t len = (size_t)(rand() % 256);

		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)rand();
		for (unsigned fmt = 0; fmt <= 4; fmt++) {
			unsigned char *c = dup_exact(buf, len);
			int first = (k & 1) ? 2147483600 : -2147483600;

			for (int a = -2; a < 3000; a += 2 + rand() % 16)
				(void)pyline_from_table(fmt, c, len, first, a);
			(void)pyline_from_table(fmt, c, len, first, 2147483647);
			free(c);
		}
	}
	printf("fuzz: %ld tables x 5 formats, no crash\n", n);
	return 0;
}

static int hexval(int c)
{
	return c <= '9' ? c - '0' : (c | 32) - 'a' + 10;
}

int main(int argc, char **argv)
{
	static char hex[1 << 22], name[4096];
	static unsigned char tab[1 << 21];
	char kind[4];
	unsigned fmt = 0;
	int first = 0, maxaddr = 0, have = 0;
	size_t len = 0;
	long checks = 0, bad = 0, tables = 0, orc = 0;

	if (argc > 2 && !strcmp(argv[1], "--fuzz"))
		return fuzz(atol(argv[2]));
	while (scanf("%3s", kind) == 1) {
		if (kind[0] == 'C') {
			if (have)
				torture(fmt, tab, len, first, maxaddr);
			if (scanf("%u %d %zu %4194303s %4095s", &fmt, &first,
				  &len, hex, name) != 5 || len > sizeof(tab))
				return 2;
			for (size_t i = 0; i < len; i++)
				tab[i] = (unsigned char)(hexval(hex[2 * i]) << 4 |
							 hexval(hex[2 * i + 1]));
			have = 1;
			maxaddr = 0;
			tables++;
		} else if (kind[0] == 'A') {
			int addr, exp, got;
			unsigned char *c;

			if (scanf("%d %d", &addr, &exp) != 2)
				return 2;
			c = dup_exact(tab, len);
			got = pyline_from_table(fmt, c, len, first, addr);
			free(c);
			if (addr > maxaddr)
				maxaddr = addr;
			checks++;
			if (got != exp && bad++ < 20)
				printf("MISMATCH %s addr=%d expected=%d got=%d\n",
				       name, addr, exp, got);
		} else if (kind[0] == 'X') {
			char o[64];
			int addr, l;

			if (scanf("%d %63s %d", &addr, o, &l) != 3)
				return 2;
			if (orc++ < 20)
				printf("ORACLE-DISAGREE %s addr=%d %s=%d\n",
				       name, addr, o, l);
		}
	}
	if (have)
		torture(fmt, tab, len, first, maxaddr);
	printf("tables=%ld checks=%ld mismatches=%ld oracle_disagreements=%ld\n",
	       tables, checks, bad, orc);
	return bad != 0;
}
