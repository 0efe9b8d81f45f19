/*
 * trace.c: opening a trace: the header, the clock, the metadata log and
 * the index of the chunks.  See trace.h for the contract; the events are
 * decoded by the walk (trace-walk.c).
 */
#include "trace.h"
#include "trace-private.h"
#include "snapshot.h"

#include "lines.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_NOTES 64
#define MAX_CHUNK_SIZE (64u << 20)

static const char *const event_names[GTR_EV_COUNT] = {
	[GTR_EV_NONE] = "none",
	[GTR_EV_GIL_TAKE_BEGIN] = "gil-take-begin",
	[GTR_EV_GIL_WAIT_BEGIN] = "gil-wait-begin",
	[GTR_EV_GIL_WAIT_SIGNALED] = "gil-wait-signaled",
	[GTR_EV_GIL_WAIT_TIMEOUT] = "gil-wait-timeout",
	[GTR_EV_GIL_DROP_REQUEST] = "gil-drop-request",
	[GTR_EV_GIL_ACQUIRE] = "gil-acquire",
	[GTR_EV_GIL_RELEASE] = "gil-release",
	[GTR_EV_GIL_TAKE_ABANDON] = "gil-take-abandon",
	[GTR_EV_GIL_FORCED_SWITCH_BEGIN] = "gil-forced-switch-begin",
	[GTR_EV_GIL_FORCED_SWITCH_END] = "gil-forced-switch-end",
	[GTR_EV_GIL_REINIT] = "gil-reinit",
	[GTR_EV_GIL_HELD_AT_FORK] = "gil-held-at-fork",
	[GTR_EV_THREAD_START] = "thread-start",
	[GTR_EV_THREAD_EXIT] = "thread-exit",
	[GTR_EV_THREAD_NAME] = "thread-name",
	[GTR_EV_THREAD_PARK] = "thread-park",
	[GTR_EV_FORK] = "fork",
	[GTR_EV_FINALIZING] = "finalizing",
	[GTR_EV_CAPI_CALL] = "capi-call",
	[GTR_EV_CAPI_RETURN] = "capi-return",
	[GTR_EV_TSTATE_FREE] = "tstate-free",
	[GTR_EV_CLOCK] = "clock",
	[GTR_EV_STACK] = "stack",
	[GTR_EV_TSTATE_REUSE] = "tstate-reuse",
	[GTR_EV_CRASH] = "crash",
	[GTR_EV_LOCK_WAIT_BEGIN] = "lock-wait-begin",
	[GTR_EV_LOCK_WAIT_END] = "lock-wait-end",
	[GTR_EV_LOCK_HELD] = "lock-held",
	[GTR_EV_GIL_ENABLED] = "gil-enabled",
	[GTR_EV_THREAD_INTERP] = "thread-interp",
	[GTR_EV_MODULE_LOAD] = "module-load",
	[GTR_EV_BLOCK_BEGIN] = "block-begin",
	[GTR_EV_BLOCK_END] = "block-end",
	[GTR_EV_TEST_MARK] = "test-mark",
	[GTR_EV_PY_STACK] = "py-stack",
	[GTR_EV_THREAD_PYNAME] = "thread-pyname",
};

const char *trace_capi_name(unsigned fn)
{
	return fn < GTR_CAPI_COUNT && gtr_capi_names[fn] ? gtr_capi_names[fn] : "unknown-c-api";
}

const char *trace_lock_wait_end_name(unsigned end)
{
	static const char *const names[] = {
		[GTR_LOCK_ACQUIRED] = "acquired",
		[GTR_LOCK_TIMED_OUT] = "timed-out",
		[GTR_LOCK_INTERRUPTED] = "interrupted",
		[GTR_LOCK_FAILED] = "failed",
	};
	return end < sizeof names / sizeof names[0] && names[end] ? names[end] : "unknown";
}

const char *trace_lock_held_at_name(unsigned at)
{
	static const char *const names[] = {
		[GTR_LOCK_HELD_AT_EXIT] = "exit",
		[GTR_LOCK_HELD_AT_PARK] = "park",
		[GTR_LOCK_HELD_AT_CRASH] = "crash",
	};
	return at < sizeof names / sizeof names[0] && names[at] ? names[at] : "unknown";
}

const char *trace_exit_how_name(unsigned how)
{
	static const char *const names[] = {
		[GTR_EXIT_RETURN] = "return",
		[GTR_EXIT_PTHREAD_EXIT] = "pthread_exit",
		[GTR_EXIT_PROCESS] = "process_exit",
	};
	return how < sizeof names / sizeof names[0] && names[how] ? names[how] : "unknown";
}

const char *trace_signal_name(unsigned sig, char *buf, size_t size)
{
	static const char *const names[] = {
		[SIGILL] = "SIGILL", [SIGABRT] = "SIGABRT", [SIGBUS] = "SIGBUS", [SIGFPE] = "SIGFPE",
		[SIGSEGV] = "SIGSEGV",
	};
	if (sig < sizeof names / sizeof names[0] && names[sig])
		return names[sig];
	snprintf(buf, size, "signal %u", sig);
	return buf;
}

const char *trace_si_code_name(unsigned sig, int code, char *buf, size_t size)
{
	/* the kernel's codes of each crash signal (asm-generic/siginfo.h) */
	static const char *const segv[] = { NULL, "SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR" };
	static const char *const bus[] = { NULL, "BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR",
		                           "BUS_MCEERR_AO" };
	static const char *const ill[] = { NULL, "ILL_ILLOPC", "ILL_ILLOPN", "ILL_ILLADR", "ILL_ILLTRP",
		                           "ILL_PRVOPC", "ILL_PRVREG", "ILL_COPROC", "ILL_BADSTK" };
	static const char *const fpe[] = { NULL, "FPE_INTDIV", "FPE_INTOVF", "FPE_FLTDIV", "FPE_FLTOVF",
		                           "FPE_FLTUND", "FPE_FLTRES", "FPE_FLTINV", "FPE_FLTSUB" };
	static const char *const sent[] = { "SI_USER", "SI_QUEUE", "SI_TIMER", "SI_MESGQ", "SI_ASYNCIO",
		                            "SI_SIGIO", "SI_TKILL" };
	const char *const *table = sig == SIGSEGV ? segv : sig == SIGBUS ? bus : sig == SIGILL ? ill
	                           : sig == SIGFPE ? fpe : NULL;
	size_t n = sig == SIGSEGV ? 5 : sig == SIGBUS ? 6 : sig == SIGILL || sig == SIGFPE ? 9 : 0;
	if (code > 0 && (size_t)code < n && table[code])
		return table[code];
	if (code == 0x80)
		return "SI_KERNEL";
	if (code <= 0 && code > -(int)(sizeof sent / sizeof sent[0]))
		return sent[-code];
	snprintf(buf, size, "code %d", code);
	return buf;
}

const char *trace_crash_disposition_name(unsigned disposition)
{
	static const char *const names[] = {
		[GTR_CRASH_DEFAULT] = "default",
		[GTR_CRASH_HANDLER] = "handler",
		[GTR_CRASH_IGNORED] = "ignored",
	};
	return disposition < sizeof names / sizeof names[0] ? names[disposition] : "unknown";
}

const struct trace_module *trace_module_of(const struct trace *t, uint64_t address)
{
	for (size_t i = 0; i < t->module_count; i++) {
		const struct trace_module *m = &t->modules[i];
		if (address >= m->load_address && address - m->load_address < m->map_size)
			return m;
	}
	return NULL;
}

const struct trace_stack *trace_stack_of(const struct trace *t, size_t event)
{
	_Static_assert(offsetof(struct trace_stack, event) == 0, "trace_first_at_event reads it first");
	if (event == SIZE_MAX)
		return NULL;
	size_t i = trace_first_at_event(t->stacks, t->stack_count, sizeof *t->stacks, event);
	return i < t->stack_count && t->stacks[i].event == event ? &t->stacks[i] : NULL;
}

const char *trace_event_name(unsigned type)
{
	return type < GTR_EV_COUNT && event_names[type] ? event_names[type] : "unknown";
}

size_t trace_utf8_sequence(const unsigned char *p, size_t left)
{
	unsigned c = p[0];
	if (c < 0xc2 || c > 0xf4)
		return 0; /* ASCII is the caller's; 0x80-0xc1 never lead */
	size_t n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (n > left)
		return 0;
	uint32_t cp = c & (0x7fu >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

void trace_sanitize_string(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t left = strlen(s);
	while (*p) {
		size_t len = *p < 0x80 ? (*p >= 0x20 && *p != 0x7f) : trace_utf8_sequence(p, left);
		if (len == 2 && p[0] == 0xc2 && p[1] < 0xa0)
			len = 0; /* C1 controls: some terminals act on them */
		if (!len) {
			*p++ = '?';
			left--;
			continue;
		}
		p += len;
		left -= len;
	}
}

void trace_note(struct trace *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lines_vappend(&t->notes, &t->note_count, MAX_NOTES, fmt, ap);
	va_end(ap);
}

/* How much of a file of `file_size` bytes is worth reading: the header,
 * the metadata log and the chunks its header says were handed out, never
 * more than the file holds.  A trace's preallocated tail (or a sparse
 * file of gigabytes with a few chunks in use) is not read.  A header that
 * makes no sense gives the whole file: check_header() says why. */
static size_t bytes_promised(int fd, size_t file_size)
{
	struct gtr_file_header h;
	if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h.magic, GTR_MAGIC, 8) != 0)
		return file_size;
	uint64_t chunks_end;
	if (h.chunk_size == 0 || h.chunks_allocated > UINT64_MAX / h.chunk_size ||
	    __builtin_add_overflow(h.chunk_area_offset, h.chunks_allocated * h.chunk_size, &chunks_end))
		return file_size;
	/* chunk_area_offset lies past the header and the metadata log
	 * (check_header() insists), so chunks_end covers both */
	uint64_t promised = chunks_end > GTR_HEADER_SIZE ? chunks_end : GTR_HEADER_SIZE;
	return promised < file_size ? (size_t)promised : file_size;
}

/* ---- the mapping ------------------------------------------------------------- */

/* Mappings being read, for the SIGBUS handler: a file truncated by someone
 * else under a reader faults at the next access past its new end. */
#define MAX_MAPPINGS 8
static struct {
	const unsigned char *start;
	size_t size;
} mappings[MAX_MAPPINGS];

static void on_sigbus(int sig, siginfo_t *info, void *uctx)
{
	(void)uctx;
	const unsigned char *addr = info->si_addr;
	for (size_t i = 0; i < MAX_MAPPINGS; i++) {
		if (mappings[i].start && addr >= mappings[i].start && addr < mappings[i].start + mappings[i].size) {
			static const char msg[] = "giltrace: error: a trace file shrank while it was read "
			                          "(another program truncated it); read a copy instead\n";
			ssize_t ignored = write(2, msg, sizeof msg - 1);
			(void)ignored;
			_exit(2); /* EXIT_UNUSABLE: unusable input */
		}
	}
	/* not ours: the default action, as without the handler */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void watch_mapping(const unsigned char *start, size_t size)
{
	static bool installed;
	if (!installed) {
		struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
		sigemptyset(&sa.sa_mask);
		installed = sigaction(SIGBUS, &sa, NULL) == 0;
	}
	for (size_t i = 0; i < MAX_MAPPINGS; i++)
		if (!mappings[i].start) {
			mappings[i].size = size;
			__atomic_store_n(&mappings[i].start, start, __ATOMIC_RELEASE);
			return;
		}
}

static void unwatch_mapping(const unsigned char *start)
{
	for (size_t i = 0; i < MAX_MAPPINGS; i++)
		if (mappings[i].start == start)
			__atomic_store_n(&mappings[i].start, NULL, __ATOMIC_RELEASE);
}

/* Map the part of the file bytes_promised() says into t->map; returns the
 * open descriptor, or -1 after a reason in err. */
static int map_trace(struct trace *t, char *err, size_t errlen)
{
	int fd = open(t->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open trace '%s': %s", t->path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "'%s' is not a regular file", t->path);
		close(fd);
		return -1;
	}
	size_t size = bytes_promised(fd, (size_t)st.st_size);
	if (size == 0) {
		snprintf(err, errlen, "'%s' is empty, not a trace", t->path);
		close(fd);
		return -1;
	}
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "cannot read trace '%s': %s", t->path, strerror(errno));
		close(fd);
		return -1;
	}
	madvise(map, size, MADV_SEQUENTIAL);
	t->map = map;
	t->map_size = size;
	watch_mapping(t->map, t->map_size);
	return fd;
}

static int check_header(struct trace *t, const unsigned char *data, size_t size, char *err, size_t errlen)
{
	if (size == 0) {
		snprintf(err, errlen, "'%s' is empty, not a trace", t->path);
		return -1;
	}
	if (size < 8 || memcmp(data, GTR_MAGIC, 8) != 0) {
		snprintf(err, errlen, "'%s' is not a giltrace trace (no GILTRACE magic)", t->path);
		return -1;
	}
	if (size < sizeof t->header) {
		snprintf(err, errlen, "'%s' is truncated inside its header (%zu bytes)", t->path, size);
		return -1;
	}
	memcpy(&t->header, data, sizeof t->header);
	const struct gtr_file_header *h = &t->header;
	if (h->version_major != GTR_VERSION_MAJOR) {
		snprintf(err, errlen, "'%s' has trace format %u.%u; this giltrace reads %u.x", t->path,
		         h->version_major, h->version_minor, GTR_VERSION_MAJOR);
		return -1;
	}
	if (h->header_size < sizeof *h || h->header_size > (1u << 20) ||
	    h->chunk_size < 4096 || h->chunk_size > MAX_CHUNK_SIZE || (h->chunk_size & (h->chunk_size - 1)) ||
	    h->meta_capacity > (64u << 20) || h->meta_used > h->meta_capacity || h->meta_used % 8 ||
	    h->chunk_area_offset < (uint64_t)h->header_size + h->meta_capacity || h->chunk_area_offset % 8 ||
	    h->chunk_area_offset > (UINT64_C(1) << 40)) {
		snprintf(err, errlen, "'%s' has a corrupt header (sizes out of range)", t->path);
		return -1;
	}
	if (h->version_minor < 4) { /* the provocations' words were not written */
		t->header.provoke = t->header.provoke_jitter_us = 0;
		t->header.provoke_exit_delay_ns = t->header.provoke_after_free_delay_ns = 0;
		t->header.provoke_jitter_seed = 0;
	}
	t->header.py_version[sizeof h->py_version - 1] = '\0';
	t->header.executable[sizeof h->executable - 1] = '\0';
	trace_sanitize_string(t->header.py_version);
	trace_sanitize_string(t->header.executable);
	return 0;
}

/* The interpreters giltrace is made and tested for (README.md). */
#define SUPPORTED_FIRST 0x03080000u
#define TESTED_LAST_MINOR 13u    /* the newest tested on a real interpreter */
#define SUPPORTED_LAST_MINOR 15u /* the newest supported from CPython's source */

bool trace_version_unsupported(const struct trace *t, char *buf, size_t size)
{
	uint32_t hex = t->header.py_version_hex;
	unsigned major = hex >> 24, minor = hex >> 16 & 0xff, micro = hex >> 8 & 0xff;
	if (!hex || (hex >= SUPPORTED_FIRST && major == 3 && minor <= TESTED_LAST_MINOR))
		return false;
	if (major == 3 && minor <= SUPPORTED_LAST_MINOR && hex >= SUPPORTED_FIRST)
		snprintf(buf, size,
		         "python %u.%u.%u is supported from CPython's source alone (3.%u-3.%u: layouts, parking, "
		         "PEP 788 calls), not tested on a real interpreter: the findings may be wrong or missing",
		         major, minor, micro, TESTED_LAST_MINOR + 1, SUPPORTED_LAST_MINOR);
	else
		snprintf(buf, size,
		         "python %u.%u.%u is %s the versions giltrace supports (3.8-3.%u): GIL handoffs are traced "
		         "only where its GIL is laid out as in those, and the thread-state, finalization and lock "
		         "findings may be wrong or missing",
		         major, minor, micro, hex < SUPPORTED_FIRST ? "older than" : "newer than", SUPPORTED_LAST_MINOR);
	return true;
}

const char *trace_writer_version(const struct trace *t, char *buf, size_t size)
{
	const char *v = t->header.writer_version;
	size_t len = strnlen(v, sizeof t->header.writer_version);
	if (!len || !size)
		return NULL;
	snprintf(buf, size, "%.*s", (int)len, v);
	return buf;
}

const char *trace_label_text(const struct trace *t, uint64_t id)
{
	for (size_t i = 0; i < t->label_count; i++)
		if (t->labels[i].id == id)
			return t->labels[i].text;
	return NULL;
}

static bool pair_usable(const struct gtr_clock_pair *a, const struct gtr_clock_pair *b)
{
	return b->clock > a->clock && b->mono_ns > a->mono_ns;
}

static void setup_clock(struct trace *t)
{
	const struct gtr_file_header *h = &t->header;
	t->clock_is_tsc = h->flags & GTR_FLAG_CLOCK_TSC;
	t->calibrated = true;
	if (!t->clock_is_tsc)
		t->ns_per_tick = 1.0;
	else if (pair_usable(&h->start, &h->end))
		t->ns_per_tick = (double)(h->end.mono_ns - h->start.mono_ns) / (double)(h->end.clock - h->start.clock);
	else if (pair_usable(&h->start, &h->calib))
		t->ns_per_tick =
		        (double)(h->calib.mono_ns - h->start.mono_ns) / (double)(h->calib.clock - h->start.clock);
	else {
		t->ns_per_tick = 1.0;
		t->calibrated = false;
		trace_note(t, "no usable clock calibration: times are in clock ticks, not ns");
	}
	if (t->ns_per_tick <= 0 || t->ns_per_tick > 1e6) {
		t->ns_per_tick = 1.0;
		t->calibrated = false;
		trace_note(t, "clock calibration out of range: times are in clock ticks, not ns");
	}
}

static void read_meta(struct trace *t, const unsigned char *data, size_t size)
{
	const struct gtr_file_header *h = &t->header;
	uint64_t start = h->header_size, end = start + h->meta_used;
	if (end > size) {
		trace_note(t, "metadata log cut short by the end of the file");
		t->cut_short = true;
		end = size;
	}
	uint64_t off = start;
	while (off + sizeof(struct gtr_meta_record) <= end) {
		struct gtr_meta_record r;
		memcpy(&r, data + off, sizeof r);
		if (r.size < sizeof r || r.size % 8 || off + r.size > end) {
			trace_note(t, "corrupt metadata record at offset %llu; the rest of the log is skipped",
			     (unsigned long long)off);
			break;
		}
		if (r.type == GTR_META_GIL && r.size >= sizeof(struct gtr_meta_gil)) {
			struct gtr_meta_gil g;
			memcpy(&g, data + off, sizeof g);
			struct trace_gil *grown = realloc(t->gils, (t->gil_count + 1) * sizeof *grown);
			if (grown) {
				t->gils = grown;
				t->gils[t->gil_count++] = (struct trace_gil){ g.index, g.base, g.in_runtime != 0 };
			}
		} else if (r.type == GTR_META_LABEL && r.size > sizeof(struct gtr_meta_label)) {
			struct gtr_meta_label l;
			memcpy(&l, data + off, sizeof l);
			struct trace_label *grown = realloc(t->labels, (t->label_count + 1) * sizeof *grown);
			if (grown) {
				t->labels = grown;
				char *text = strndup((const char *)data + off + sizeof l, r.size - sizeof l);
				if (text) {
					trace_sanitize_string(text);
					t->labels[t->label_count++] = (struct trace_label){ l.id, text };
				}
			}
		} else if (r.type == GTR_META_MODULE && r.size > sizeof(struct gtr_meta_module)) {
			struct gtr_meta_module m;
			memcpy(&m, data + off, sizeof m);
			const char *p = (const char *)data + off + sizeof m;
			size_t max = r.size - sizeof m;
			struct trace_module *grown = realloc(t->modules, (t->module_count + 1) * sizeof *grown);
			if (grown) {
				t->modules = grown;
				struct trace_module *mod = &t->modules[t->module_count];
				mod->load_address = m.load_address;
				mod->map_size = m.map_size;
				mod->path = strndup(p, max);
				if (mod->path)
					trace_sanitize_string(mod->path);
				unsigned len = m.build_id_len < sizeof m.build_id ? m.build_id_len : sizeof m.build_id;
				for (unsigned i = 0; i < len; i++)
					snprintf(mod->build_id + 2 * i, 3, "%02x", m.build_id[i]);
				mod->build_id[2 * len] = '\0';
				if (mod->path)
					t->module_count++;
			}
		}
		off += r.size;
	}
	if (h->flags & GTR_FLAG_META_FULL)
		trace_note(t, "the metadata log was full: some modules or GILs are not listed");
	if (h->flags & GTR_FLAG_GIL_LAYOUT_DISAGREES)
		trace_note(t, "the interpreter's _Py_DebugOffsets put the GIL's fields elsewhere than giltrace's layout "
		              "table for this version: the shim used the interpreter's own (a build with another "
		              "layout; tell giltrace's developers)");
	if (h->flags & GTR_FLAG_LOCKS_UNTRACKED)
		trace_note(t, "the shim's lock-owner table was full: some locks have no owner and no lock events "
		              "(exit-lock-held may miss a lock)");
}

static int chunk_order(const void *a, const void *b)
{
	const struct trace_chunk *x = a, *y = b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return 0;
}

struct chunk_key {
	uint32_t serial;
	int32_t tid;
	uint64_t pthread_id;
	struct trace_chunk c;
};

static int key_order(const void *a, const void *b)
{
	const struct chunk_key *x = a, *y = b;
	if (x->serial != y->serial)
		return x->serial < y->serial ? -1 : 1;
	return chunk_order(&x->c, &y->c);
}

/* Index the chunks in the file by thread and seq, checking each header;
 * the threads are the serials found.  The headers are read with pread, not
 * through the mapping: a fault there would map the pages around it, and
 * the whole file would be in memory before the first event is read.  0,
 * or -1 when out of memory. */
static int index_chunks(struct trace *t, int fd)
{
	const struct gtr_file_header *h = &t->header;
	uint64_t in_file =
	        t->map_size > h->chunk_area_offset ? (t->map_size - h->chunk_area_offset) / h->chunk_size : 0;
	uint64_t count = h->chunks_allocated;
	if (count > in_file) {
		trace_note(t, "the file ends after %llu of %llu chunks: it was cut short", (unsigned long long)in_file,
		           (unsigned long long)count);
		t->cut_short = true;
		count = in_file;
	}
	t->chunks_in_file = count;
	struct chunk_key *keys = calloc(count ? count : 1, sizeof *keys);
	if (!keys)
		return -1;
	size_t n = 0;
	uint32_t room = h->chunk_size - GTR_CHUNK_HEADER_SIZE;
	for (uint64_t i = 0; i < count; i++) {
		struct gtr_chunk_header ch;
		if (pread(fd, &ch, sizeof ch, (off_t)(h->chunk_area_offset + i * h->chunk_size)) != (ssize_t)sizeof ch)
			memset(&ch, 0, sizeof ch); /* shrank: the file is cut there */
		if (ch.magic == 0)
			continue; /* handed out, not yet started, or a ring block's spare */
		if (ch.magic != GTR_CHUNK_MAGIC || ch.thread_serial == 0) {
			trace_note(t, "chunk %llu has a corrupt header; skipped", (unsigned long long)i);
			continue;
		}
		if (ch.used > room || ch.used % 8) {
			uint32_t keep = (ch.used > room ? room : ch.used) & ~7u;
			trace_note(t, "chunk %llu claims %u bytes of events; read %u", (unsigned long long)i, ch.used, keep);
			ch.used = keep;
		}
		keys[n++] = (struct chunk_key){ ch.thread_serial, ch.tid, ch.pthread_id, { i, ch.used, ch.seq, ch.first_clock } };
	}
	qsort(keys, n, sizeof *keys, key_order);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || keys[i].serial != keys[i - 1].serial)
			t->thread_count++;
	t->threads = calloc(t->thread_count ? t->thread_count : 1, sizeof *t->threads);
	t->chunks = malloc((n ? n : 1) * sizeof *t->chunks);
	if (!t->threads || !t->chunks) {
		free(keys);
		return -1;
	}
	size_t thread = 0;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && keys[i].serial != keys[i - 1].serial)
			thread++;
		struct trace_thread *th = &t->threads[thread];
		if (i == 0 || keys[i].serial != keys[i - 1].serial) {
			/* the thread's identity is its first chunk's */
			th->serial = keys[i].serial;
			th->tid = keys[i].tid;
			th->pthread_id = keys[i].pthread_id;
			th->first_chunk = i;
		}
		th->chunk_count++;
		t->chunks[i] = keys[i].c;
	}
	t->chunk_count = n;
	free(keys);
	return 0;
}

/* The hang snapshot beside the trace, if there is one of this process
 * (a snapshot left from another trace that had the name is not); one that
 * cannot be used is a note, never a reason to refuse the trace. */
static void load_snapshot(struct trace *t)
{
	struct snapshot s;
	char err[256];
	int rc = snapshot_read(t->path, &s, err, sizeof err);
	if (rc < 0)
		trace_note(t, "the hang snapshot beside the trace is unusable: %s", err);
	if (rc <= 0)
		return;
	if (s.pid != t->header.pid || s.taken_realtime_ns < t->header.start_realtime_ns) {
		trace_note(t, "the hang snapshot beside the trace is of another process (pid %d); ignored", (int)s.pid);
		snapshot_free(&s);
		return;
	}
	t->snapshot = malloc(sizeof *t->snapshot);
	if (!t->snapshot) {
		snapshot_free(&s);
		return;
	}
	*t->snapshot = s;
}

int trace_open(struct trace *t, const char *path, char *err, size_t errlen)
{
	memset(t, 0, sizeof *t);
	t->path = path;
	int fd = map_trace(t, err, errlen);
	if (fd < 0)
		return -1;
	if (check_header(t, t->map, t->map_size, err, errlen) != 0) {
		close(fd);
		return -1;
	}
	setup_clock(t);
	char version_note[256];
	if (trace_version_unsupported(t, version_note, sizeof version_note))
		trace_note(t, "%s", version_note);
	t->not_closed = !(t->header.flags & GTR_FLAG_CLOSED);
	t->out_of_space = t->header.flags & (GTR_FLAG_OUT_OF_SPACE | GTR_FLAG_FILE_LOST);
	t->truncated = t->not_closed || t->out_of_space;
	read_meta(t, t->map, t->map_size);
	int rc = index_chunks(t, fd);
	close(fd);
	if (rc != 0) {
		snprintf(err, errlen, "cannot read trace '%s': out of memory", path);
		return -1;
	}
	load_snapshot(t);
	t->notes_at_open = t->note_count;
	return 0;
}

int trace_read_header(const char *path, struct gtr_file_header *h)
{
	struct trace t;
	unsigned char buf[sizeof t.header];
	char err[256];
	memset(&t, 0, sizeof t);
	t.path = path;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 0 || check_header(&t, buf, (size_t)n, err, sizeof err) != 0)
		return -1;
	*h = t.header;
	return 0;
}


void trace_close(struct trace *t)
{
	if (t->map) {
		unwatch_mapping(t->map);
		munmap((void *)t->map, t->map_size);
	}
	for (size_t i = 0; t->threads && i < t->thread_count; i++)
		free(t->threads[i].losses);
	free(t->threads);
	free(t->chunks);
	free(t->gils);
	for (size_t i = 0; i < t->module_count; i++)
		free(t->modules[i].path);
	free(t->modules);
	for (size_t i = 0; i < t->label_count; i++)
		free(t->labels[i].text);
	free(t->labels);
	free(t->stacks);
	trace_py_stacks_free(t);
	free(t->losses);
	free(t->loss_gaps.items);
	free(t->loss_all.items);
	lines_free(t->notes, t->note_count);
	if (t->snapshot)
		snapshot_free(t->snapshot);
	free(t->snapshot);
	memset(t, 0, sizeof *t);
}

/* A delay as the option takes it: the largest unit that says it exactly. */
static const char *option_duration(char *buf, size_t size, uint64_t ns)
{
	static const struct {
		const char *unit;
		uint64_t ns;
	} units[] = { { "s", 1000000000u }, { "ms", 1000000u }, { "us", 1000u }, { "ns", 1u } };
	size_t u = 0;
	while (ns && ns % units[u].ns)
		u++;
	snprintf(buf, size, "%" PRIu64 "%s", ns / units[u].ns, units[u].unit);
	return buf;
}

const char *trace_provoked(const struct trace *t, char *buf, size_t size)
{
	const struct gtr_file_header *h = &t->header;
	char d[32];
	size_t n = 0;
	if (!h->provoke || !size)
		return NULL;
	buf[0] = '\0';
#define ADD(...) (n += (size_t)snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__), n = n < size ? n : size)
	if (h->provoke & GTR_PROVOKE_EXIT_DELAY)
		ADD("%sexit-delay=%s", n ? ", " : "", option_duration(d, sizeof d, h->provoke_exit_delay_ns));
	if (h->provoke & GTR_PROVOKE_EXIT_DELAY_AFTER_FREE)
		ADD("%sexit-delay-after-free=%s", n ? ", " : "",
		    option_duration(d, sizeof d, h->provoke_after_free_delay_ns));
	if (h->provoke & GTR_PROVOKE_POISON)
		ADD("%spoison", n ? ", " : "");
	if (h->provoke & GTR_PROVOKE_JITTER)
		ADD("%sjitter=%" PRIu32 "us seed=%" PRIu64, n ? ", " : "", h->provoke_jitter_us, h->provoke_jitter_seed);
	uint32_t unknown = h->provoke & ~(uint32_t)(GTR_PROVOKE_EXIT_DELAY | GTR_PROVOKE_EXIT_DELAY_AFTER_FREE |
	                                            GTR_PROVOKE_POISON | GTR_PROVOKE_JITTER);
	if (unknown)
		ADD("%sunknown (0x%" PRIx32 ")", n ? ", " : "", unknown);
#undef ADD
	return buf;
}
