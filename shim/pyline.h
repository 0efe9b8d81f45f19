/* pyline.h - CPython line-number table decoding, async-signal-safe. */
#ifndef PYLINE_H
#define PYLINE_H

#include <stddef.h>

enum pyline_format {
	PYLINE_LNOTAB = 1,	/* 3.8, 3.9: co_lnotab */
	PYLINE_LINETABLE_310,	/* 3.10: co_linetable */
	PYLINE_LOCATIONS,	/* 3.11 .. 3.14: co_linetable (PEP 657) */
};

/*
 * Returns the source line of the instruction at byte offset `addr`
 * (instruction index * 2 for 3.6+ wordcode; for 3.11+ an offset into
 * co_code_adaptive, CACHE units included), or -1 if the table says the
 * instruction has no line, `addr` is past the table, or the table is
 * malformed.  addr < 0 yields firstlineno, as PyCode_Addr2Line() does.
 * Never reads outside [table, table+len); no allocation, no libc.
 *
 * Where `addr` comes from, per version (as PyFrame_GetLineNumber() /
 * _PyInterpreterFrame_GetLine() compute it):
 *   3.8, 3.9   frame->f_lasti                        (already bytes)
 *   3.10       frame->f_lasti * 2                    (f_lasti counts units)
 *   3.11, 3.12 (iframe->prev_instr - _PyCode_CODE(iframe->f_code)) * 2
 *   3.13       (iframe->instr_ptr - _PyCode_CODE(code)) * 2,
 *              code = (PyCodeObject *)iframe->f_executable
 * (_PyCode_CODE(co) is co->co_code_adaptive; 3.14 free-threaded builds
 * run per-thread bytecode copies and are not covered by this note.)
 */
int pyline_from_table(unsigned format, const unsigned char *table, size_t len,
		      int firstlineno, int addr);

#endif /* PYLINE_H */
