/*
 * pyobject.h: reading CPython objects of the own process without trusting
 * them (pyobject.c), for pystack.c.  Not for the rest of the shim.
 */
#ifndef GILTRACE_PYOBJECT_H
#define GILTRACE_PYOBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "cpython-layout.h"

/* This interpreter's layout (filled by pyobject_prepare; usable false when
 * there is none) and the type objects that prove what a pointer is. */
extern struct py_layout py_layout;
extern uintptr_t py_type_code, py_type_unicode, py_type_bytes, py_type_method;

/* At activation: the layout of this interpreter (a row, _Py_DebugOffsets
 * on 3.13) and the type objects.  Sets py_layout.usable. */
void pyobject_prepare(void);

/* Every read of a walk goes to the process this thread is in (a vfork
 * child's walk must not read its parent): call before the first. */
void py_reads_begin(void);
/* Reads len bytes at addr of this process through process_vm_readv: the
 * bytes read (a short count where the memory ends), or -1 with *err set;
 * never a fault.  async-signal-safe. */
ssize_t py_peek_some(uintptr_t addr, void *buf, size_t len, int *err);
/* All len bytes, or false with *err set (EFAULT for a short read). */
bool py_peek(uintptr_t addr, void *buf, size_t len, int *err);

static inline uint64_t py_word_at(const unsigned char *buf, unsigned off)
{
	uint64_t w;
	memcpy(&w, buf + off, sizeof w);
	return w;
}

static inline uint32_t py_u32_at(const unsigned char *buf, unsigned off)
{
	uint32_t w;
	memcpy(&w, buf + off, sizeof w);
	return w;
}

/* A str object's text as UTF-8 into out (not terminated): its byte count,
 * or -1 (not a compact str, or unreadable).  A text longer than `size`
 * bytes keeps its end when `keep_end` (a file's path), else its start;
 * *cut says that it was cut. */
int py_read_str(uintptr_t addr, char *out, size_t size, bool keep_end, bool *cut, int *err);

/* The instance attributes `names` (ASCII, at most 4, the same names in
 * the same order at every call: their key objects are remembered by
 * position) of the object at obj, into value[] (0: not found), from its
 * own dictionary or values only (no class attributes, no descriptors). */
void py_instance_attrs(uintptr_t obj, const char *const names[], unsigned n, uintptr_t value[], int *err);

#endif
