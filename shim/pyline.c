/*
 * pyline.c: which source line a code object's instruction is on, from its
 * line table, as PyCode_Addr2Line() computes it (pystack.c records it).
 * Pure: no allocation, no libc, no read outside the table; a malformed
 * table gives -1, never a fault.  Checked against every interpreter
 * present, instruction by instruction (tests/test_pystacks.py).
 */
#include <limits.h>
#include "pyline.h"

/* Lines are summed in long long; a sum leaving int range is malformed. */
#define LINE_OK(l)	((l) >= INT_MIN && (l) <= INT_MAX)

/*
 * Signed varint of the 3.11+ location table (Objects/locations.md):
 * 6-bit chunks, least significant first, bit 6 = more follow; then
 * bit 0 is the sign.  Must end before `end` (the next entry's first
 * byte).  At most 6 chunks (36 bits) are accepted, so no shift is UB.
 */
static int read_svarint(const unsigned char *p, const unsigned char *end,
			long long *out)
{
	unsigned long long v = 0;
	unsigned int shift = 0;

	do {
		if (p >= end || shift > 30)
			return -1;
		v |= (unsigned long long)(*p & 63) << shift;
		shift += 6;
	} while (*p++ & 64);
	*out = (v & 1) ? -(long long)(v >> 1) : (long long)(v >> 1);
	return 0;
}

int pyline_from_table(unsigned format, const unsigned char *t, size_t len,
		      int firstlineno, int addr)
{
	long long line = firstlineno, pc = 0, d;
	size_t i, j;
	unsigned int code;

	if (addr < 0)
		return firstlineno;	/* PyCode_Addr2Line() does the same */
	if (!t)
		len = 0;

	switch (format) {
	case PYLINE_LNOTAB:
		/*
		 * 3.8/3.9 co_lnotab (Objects/lnotab_notes.txt, PyCode_Addr2Line()
		 * in Objects/codeobject.c): pairs (unsigned byte address delta,
		 * signed byte line delta).  The line is the one in force at the
		 * last pair start <= addr; never "no line".  Odd tail ignored.
		 */
		for (i = 0; i + 1 < len; i += 2) {
			pc += t[i];
			if (pc > addr)
				break;
			line += (signed char)t[i + 1];
			if (!LINE_OK(line))
				return -1;
		}
		return (int)line;

	case PYLINE_LINETABLE_310:
		/*
		 * 3.10 co_linetable (3.10 Objects/lnotab_notes.txt; advance()
		 * and _PyCode_CheckLineNumber() in Objects/codeobject.c): pairs
		 * (unsigned byte sdelta, signed byte ldelta); entry k covers
		 * [start, start + sdelta).  ldelta == -128 means "no line" and
		 * leaves the running line unchanged.  Past the end: -1.
		 */
		for (i = 0; i + 1 < len; i += 2) {
			d = (signed char)t[i + 1];
			pc += t[i];
			if (d != -128)
				line += d;
			if (!LINE_OK(line))
				return -1;
			if (addr < pc)
				return d == -128 ? -1 : (int)line;
		}
		return -1;

	case PYLINE_LOCATIONS:
		/*
		 * 3.11-3.14 co_linetable (Objects/locations.md; advance() and
		 * get_line_delta() in Objects/codeobject.c).  Entry: a byte
		 * 1cccclll (code c, length l+1 code units, CACHEs included)
		 * followed by bytes with bit 7 clear.  Line delta by code:
		 * 0-9 none, 10-12 c-10, 13/14 leading svarint, 15 "no line"
		 * (running line unchanged).  Past the end: -1.
		 */
		for (i = 0; i < len; i = j) {
			if (!(t[i] & 0x80))
				return -1;
			for (j = i + 1; j < len && !(t[j] & 0x80); j++)
				;
			code = (t[i] >> 3) & 15;
			d = 0;
			if (code == 13 || code == 14) {
				if (read_svarint(t + i + 1, t + j, &d))
					return -1;
			} else if (code >= 10 && code <= 12) {
				d = code - 10;
			}
			line += d;
			if (!LINE_OK(line))
				return -1;
			pc += ((t[i] & 7) + 1) * 2;
			if (addr < pc)
				return code == 15 ? -1 : (int)line;
		}
		return -1;
	}
	return -1;
}
