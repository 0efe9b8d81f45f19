/*
 * pyobject.c: reading CPython objects of the own process without trusting
 * them: strings, a Thread's attributes, and which layout this interpreter
 * has (for pystack.c).
 *
 * Design note.  The objects read here may be freed, poisoned or half
 * written by another thread (a freed thread state is what freed-tstate-use
 * is about), so nothing is dereferenced: every read goes through
 * process_vm_readv() on the own process, which fails with EFAULT where a
 * load would fault, and every object is checked by its type pointer
 * (PyUnicode_Type, PyBytes_Type, ...) before its fields are believed.
 * Lengths read from memory are bounded before they size a read.  No lock,
 * no allocation, no libc beyond getpid() and the system call: the crash
 * handler reads through here too.
 *
 * The layout: a row per version 3.8-3.13 and 3.13t (cpython-layout.h), and
 * on 3.13 the interpreter's own _Py_DebugOffsets over the row for what it
 * has (frames, code, str, bytes).  3.14+ have no row: their frames are not
 * read (docs/cpython-internals.md §10 says why).
 *
 * What it cannot see: a str that is not compact (legacy strings, which no
 * code object or Thread name is in 3.8+), and attributes that live
 * elsewhere than the instance's own dictionary.
 */
#include <dlfcn.h>
#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pyobject.h"
#include "shim.h"

/* The largest str header read (3.13t compact: 72 bytes). */
#define PY_STR_HEADER_MAX 96

struct py_layout py_layout;
uintptr_t py_type_code, py_type_unicode, py_type_bytes, py_type_method;

/* The process this thread's walk reads: per thread, so that a vfork
 * child's walk, on its parent's thread, cannot redirect another's. */
static SHIM_TLS pid_t reads_pid;

void py_reads_begin(void)
{
	reads_pid = getpid();
}

ssize_t py_peek_some(uintptr_t addr, void *buf, size_t len, int *err)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	if (!addr) {
		*err = EFAULT;
		return -1;
	}
	ssize_t n = process_vm_readv(reads_pid, &local, 1, &remote, 1, 0);
	if (n < 0)
		*err = errno;
	return n;
}

bool py_peek(uintptr_t addr, void *buf, size_t len, int *err)
{
	ssize_t n = py_peek_some(addr, buf, len, err);
	if (n >= 0 && (size_t)n < len)
		*err = EFAULT;
	return n >= 0 && (size_t)n == len;
}

/* ---- strings -------------------------------------------------------------------- */

static unsigned utf8_len(uint32_t cp)
{
	return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static void put_utf8(char *out, uint32_t cp)
{
	unsigned char *o = (unsigned char *)out;
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
	} else if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
	} else {
		o[0] = (unsigned char)(0xf0 | (cp >> 18 & 0x07));
		o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	}
}

static uint32_t char_at(const unsigned char *chars, unsigned kind, uint64_t i)
{
	const unsigned char *p = chars + i * kind;
	return kind == 1 ? p[0] : kind == 2 ? (uint32_t)(p[0] | p[1] << 8) : py_u32_at(p, 0);
}

int py_read_str(uintptr_t addr, char *out, size_t size, bool keep_end, bool *cut, int *err)
{
	const struct py_layout *l = &py_layout;
	unsigned char head[PY_STR_HEADER_MAX], chars[4 * GTR_PY_FILE_MAX];
	*cut = false;
	if (size > GTR_PY_FILE_MAX || !py_peek(addr, head, l->str_compact_size, err) ||
	    py_word_at(head, l->ob_type) != py_type_unicode)
		return -1;
	uint64_t length = py_word_at(head, l->str_length);
	uint32_t state = py_u32_at(head, l->str_state);
	unsigned kind = state >> PY_STR_KIND_SHIFT & 7u;
	bool compact = state >> PY_STR_COMPACT_SHIFT & 1u, ascii = state >> PY_STR_ASCII_SHIFT & 1u;
	if (!compact || (kind != 1 && kind != 2 && kind != 4) || length > (UINT64_C(1) << 40))
		return -1;
	/* at most `size` characters, the end's or the start's: then as many of
	 * them as `size` bytes of UTF-8 hold, from the same end */
	uint64_t count = length < size ? length : size, from = keep_end ? length - count : 0;
	if (!py_peek(addr + (ascii ? l->str_ascii_size : l->str_compact_size) + from * kind, chars, count * kind, err))
		return -1;
	uint64_t first = 0, last = count, bytes = 0;
	if (keep_end) {
		while (first < last && bytes + utf8_len(char_at(chars, kind, last - 1)) <= size)
			bytes += utf8_len(char_at(chars, kind, --last));
		first = last;
		last = count;
	} else {
		while (first < last && bytes + utf8_len(char_at(chars, kind, first)) <= size)
			bytes += utf8_len(char_at(chars, kind, first++));
		last = first;
		first = 0;
	}
	*cut = last - first < length;
	size_t at = 0;
	for (uint64_t i = first; i < last; i++) {
		uint32_t cp = char_at(chars, kind, i);
		put_utf8(out + at, cp);
		at += utf8_len(cp);
	}
	return (int)at;
}

/* ---- a Thread's attributes ------------------------------------------------------ */

/* Whether the str at addr has the length of `want` (ASCII) and, unless
 * `length_only`, its characters: the length first, the characters only
 * when it matches. */
static bool is_str(uintptr_t addr, const char *want, bool length_only, int *err)
{
	const struct py_layout *l = &py_layout;
	unsigned char head[PY_STR_HEADER_MAX];
	char text[32];
	size_t n = strlen(want);
	if (n >= sizeof text || !py_peek(addr, head, l->str_compact_size, err) ||
	    py_word_at(head, l->ob_type) != py_type_unicode || py_word_at(head, l->str_length) != n ||
	    !(py_u32_at(head, l->str_state) >> PY_STR_ASCII_SHIFT & 1u))
		return false;
	return length_only || (py_peek(addr + l->str_ascii_size, text, n, err) && memcmp(text, want, n) == 0);
}

/* The key objects found for the names asked (interned strings, alive as
 * long as the code that uses them: threading's): compared by address
 * first, and then only checked to be a str of that length, one read
 * instead of a scan of every key.  Slots are per name, in the order
 * asked. */
#define KEY_CACHE 4
static uint64_t key_cache[KEY_CACHE];

/* Keys `names` in a keys object: each one's entry index (or -1), and its
 * value for a combined table.  No hashing: a Thread has a few dozen keys,
 * read in one go. */
static bool keys_find(uintptr_t keys, const char *const names[], unsigned n, int64_t index[], uint64_t value[],
                      int *err)
{
	const struct py_layout *l = &py_layout;
	enum { MAX_ENTRIES = 64 };
	unsigned char head[40];
	uint64_t entries[MAX_ENTRIES * 3], first, nentries, entry_words = 3, key_at = 1;
	if (!py_peek(keys, head, sizeof head, err))
		return false;
	if (l->dk_log2) {
		unsigned log2_index_bytes = head[9], kind = head[10];
		if (log2_index_bytes > 40)
			return false;
		first = keys + l->dk_indices + (UINT64_C(1) << log2_index_bytes);
		if (kind != 0) { /* str keys, or split: {key, value} */
			entry_words = 2;
			key_at = 0;
		}
	} else {
		uint64_t size = py_word_at(head, l->dk_size);
		if (!size || size & (size - 1) || size > (UINT64_C(1) << 32))
			return false;
		first = keys + l->dk_indices + size * (size <= 0xff ? 1 : size <= 0xffff ? 2 : 4);
	}
	nentries = py_word_at(head, l->dk_nentries);
	if (nentries > MAX_ENTRIES)
		nentries = MAX_ENTRIES;
	if (!nentries || !py_peek(first, entries, nentries * entry_words * 8, err))
		return false;
	bool found = false;
	for (unsigned k = 0; k < n; k++) {
		index[k] = -1;
		uint64_t cached = k < KEY_CACHE ? __atomic_load_n(&key_cache[k], __ATOMIC_RELAXED) : 0;
		for (uint64_t i = 0; cached && index[k] < 0 && i < nentries; i++)
			if (entries[i * entry_words + key_at] == cached && is_str(cached, names[k], true, err))
				index[k] = (int64_t)i;
		for (uint64_t i = 0; index[k] < 0 && i < nentries; i++) {
			uint64_t key = entries[i * entry_words + key_at];
			if (key && key != cached && is_str(key, names[k], false, err)) {
				index[k] = (int64_t)i;
				if (k < KEY_CACHE)
					__atomic_store_n(&key_cache[k], key, __ATOMIC_RELAXED);
			}
		}
		if (index[k] >= 0) {
			value[k] = entries[(uint64_t)index[k] * entry_words + key_at + 1];
			found = true;
		}
	}
	return found;
}

/* The values of `names` from a values array (split dict or an instance's
 * own) by their index in the keys. */
static void values_at(uintptr_t values, unsigned n, const int64_t index[], uint64_t value[], int *err)
{
	for (unsigned k = 0; k < n; k++)
		if (index[k] >= 0 && !py_peek(values + py_layout.values_array + 8 * (uint64_t)index[k], &value[k],
		                              sizeof value[k], err))
			value[k] = 0;
}

/* A dict's values for `names`: combined, or split with its values array. */
static void dict_get(uintptr_t dict, const char *const names[], unsigned n, uint64_t value[], int *err)
{
	const struct py_layout *l = &py_layout;
	uint64_t keys, values;
	int64_t index[KEY_CACHE];
	if (!py_peek(dict + l->ma_keys, &keys, sizeof keys, err) ||
	    !py_peek(dict + l->ma_values, &values, sizeof values, err) || !keys_find(keys, names, n, index, value, err))
		return;
	if (values)
		values_at(values, n, index, value, err);
}

/* An instance's values array for `names`, with its type's shared keys. */
static void values_get(uintptr_t type, uintptr_t values, const char *const names[], unsigned n, uint64_t value[],
                       int *err)
{
	uint64_t keys;
	int64_t index[KEY_CACHE];
	if (py_peek(type + py_layout.ht_cached_keys, &keys, sizeof keys, err) && keys_find(keys, names, n, index, value, err))
		values_at(values, n, index, value, err);
}

/* The word at a (negative) offset from the object: a managed dict's. */
static bool word_near(uintptr_t obj, int offset, uint64_t *w, int *err)
{
	return offset != -1 && py_peek(obj + (uint64_t)(int64_t)offset, w, sizeof *w, err);
}

void py_instance_attrs(uintptr_t obj, const char *const names[], unsigned n, uintptr_t value[], int *err)
{
	const struct py_layout *l = &py_layout;
	uint64_t type, flags, w, size;
	int64_t offset;
	unsigned char valid;
	memset(value, 0, n * sizeof *value);
	if (n > KEY_CACHE || !py_peek(obj + l->ob_type, &type, sizeof type, err) ||
	    !py_peek(type + l->tp_flags, &flags, sizeof flags, err))
		return;
	if (l->dict_kind == PY_DICT_AT_OFFSET || !(flags & l->flag_managed_dict)) {
		if (py_peek(type + l->tp_dictoffset, &offset, sizeof offset, err) && offset > 0 &&
		    py_peek(obj + (uint64_t)offset, &w, sizeof w, err) && w)
			dict_get(w, names, n, value, err);
		return;
	}
	switch (l->dict_kind) {
	case PY_DICT_MANAGED_311: /* values at obj-32, else a dict at obj-24 */
		if (!word_near(obj, l->managed_values, &w, err))
			return;
		if (w)
			values_get(type, w, names, n, value, err);
		else if (word_near(obj, l->managed_dict, &w, err) && w)
			dict_get(w, names, n, value, err);
		return;
	case PY_DICT_OR_VALUES_312: /* one word: values + 1 (bit 0), or a dict */
		if (!word_near(obj, l->managed_values, &w, err))
			return;
		if (w & 1)
			values_get(type, w + 1, names, n, value, err);
		else if (w)
			dict_get(w, names, n, value, err);
		return;
	case PY_DICT_INLINE_313: /* a dict, else values inline after the object */
		if (!word_near(obj, l->managed_dict, &w, err))
			return;
		if (w)
			dict_get(w, names, n, value, err);
		else if (flags & l->flag_inline_values && py_peek(type + l->tp_basicsize, &size, sizeof size, err) &&
		         py_peek(obj + size + l->values_valid, &valid, 1, err) && valid)
			values_get(type, obj + size, names, n, value, err);
		return;
	default:
		return;
	}
}

/* ---- the layout ----------------------------------------------------------------- */

/* 3.13+: the offsets _Py_DebugOffsets gives, over the row's. */
static void from_debug_offsets(struct py_layout *l, unsigned minor)
{
	const unsigned char *runtime = shim_python.runtime;
	const struct py_debug_offsets_row *d = NULL;
	for (size_t i = 0; i < sizeof py_debug_offsets_rows / sizeof *py_debug_offsets_rows; i++)
		if (minor >= py_debug_offsets_rows[i].first_minor && minor <= py_debug_offsets_rows[i].last_minor)
			d = &py_debug_offsets_rows[i];
	if (!d || memcmp(runtime, DEBUG_OFFSETS_COOKIE, 8) != 0 ||
	    (shim_python.runtime_size && d->str_ascii_size + 8 > shim_python.runtime_size))
		return;
#define DEBUG_OFFSET(field, entry) l->field = (unsigned)py_word_at(runtime, d->entry)
	DEBUG_OFFSET(tstate_frame, tstate_current_frame);
	DEBUG_OFFSET(frame_back, frame_previous);
	DEBUG_OFFSET(frame_code, frame_executable);
	DEBUG_OFFSET(frame_instr, frame_instr_ptr);
	DEBUG_OFFSET(frame_localsplus, frame_localsplus);
	DEBUG_OFFSET(code_filename, code_filename);
	DEBUG_OFFSET(code_name, code_name);
	DEBUG_OFFSET(code_qualname, code_qualname);
	DEBUG_OFFSET(code_linetable, code_linetable);
	DEBUG_OFFSET(code_firstlineno, code_firstlineno);
	DEBUG_OFFSET(code_adaptive, code_adaptive);
	DEBUG_OFFSET(ob_type, ob_type);
	DEBUG_OFFSET(bytes_size, bytes_size);
	DEBUG_OFFSET(bytes_sval, bytes_sval);
	DEBUG_OFFSET(str_state, str_state);
	DEBUG_OFFSET(str_length, str_length);
	DEBUG_OFFSET(str_ascii_size, str_ascii_size);
#undef DEBUG_OFFSET
	l->frame_owner = (int)py_word_at(runtime, d->frame_owner);
}

static unsigned max_of(unsigned a, unsigned b)
{
	return a > b ? a : b;
}

void pyobject_prepare(void)
{
	struct py_layout *l = &py_layout;
	unsigned minor = shim_python.version_hex >> 16 & 0xff;
	bool ft = shim_python.build & GTR_BUILD_FREE_THREADED;
	memset(l, 0, sizeof *l);
	if (shim_python.version_hex >> 24 != 3)
		return;
	for (size_t i = 0; i < sizeof py_layout_rows / sizeof *py_layout_rows; i++)
		if (minor >= py_layout_rows[i].first_minor && minor <= py_layout_rows[i].last_minor &&
		    py_layout_rows[i].free_threaded == ft)
			*l = py_layout_rows[i];
	if (!l->first_minor)
		return; /* 3.14+: no layout known from a real interpreter */
	if (minor >= DEBUG_OFFSETS_FIRST_MINOR)
		from_debug_offsets(l, minor);
	py_type_code = (uintptr_t)dlsym(RTLD_DEFAULT, "PyCode_Type");
	py_type_unicode = (uintptr_t)dlsym(RTLD_DEFAULT, "PyUnicode_Type");
	py_type_bytes = (uintptr_t)dlsym(RTLD_DEFAULT, "PyBytes_Type");
	py_type_method = (uintptr_t)dlsym(RTLD_DEFAULT, "PyMethod_Type");
	l->frame_read = 8 + max_of(max_of(l->frame_back, l->frame_code),
	                           max_of(l->frame_instr, l->frame_owner >= 0 ? (unsigned)l->frame_owner : 0));
	l->code_read = 8 + max_of(max_of(max_of(l->code_filename, l->code_name), max_of(l->code_qualname, l->code_linetable)),
	                          max_of(l->code_firstlineno, l->ob_type));
	l->usable = py_type_code && py_type_unicode && py_type_bytes && l->str_compact_size <= PY_STR_HEADER_MAX;
}
