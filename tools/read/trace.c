/*
 * trace.c: the trace reader.  See trace.h for its contract.
 */
#include "trace.h"

#include "lines.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	[GTR_EV_THREAD_PAUSE] = "thread-pause",
	[GTR_EV_FORK] = "fork",
	[GTR_EV_FINALIZING] = "finalizing",
	[GTR_EV_CAPI_CALL] = "capi-call",
	[GTR_EV_CAPI_RETURN] = "capi-return",
	[GTR_EV_TSTATE_FREE] = "tstate-free",
	[GTR_EV_CLOCK] = "clock",
	[GTR_EV_STACK] = "stack",
	[GTR_EV_TSTATE_REUSE] = "tstate-reuse",
};

const char *trace_capi_name(unsigned fn)
{
	return fn < GTR_CAPI_COUNT && gtr_capi_names[fn] ? gtr_capi_names[fn] : "unknown-c-api";
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
	size_t lo = 0, hi = t->stack_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->stacks[mid].event < event)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->stack_count && t->stacks[lo].event == event ? &t->stacks[lo] : NULL;
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

__attribute__((format(printf, 2, 3))) static void note(struct trace *t, const char *fmt, ...)
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

/* The part of the file bytes_promised() says, into *data (malloc'd). */
static int read_trace_bytes(const char *path, unsigned char **data, size_t *size, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open trace '%s': %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "'%s' is not a regular file", path);
		close(fd);
		return -1;
	}
	size_t cap = bytes_promised(fd, (size_t)st.st_size), len = 0;
	unsigned char *buf = malloc(cap ? cap : 1);
	if (!buf) {
		snprintf(err, errlen, "cannot read trace '%s': out of memory", path);
		close(fd);
		return -1;
	}
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read trace '%s': %s", path, strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		if (n == 0)
			break; /* the file shrank while we read it */
		len += (size_t)n;
	}
	close(fd);
	*data = buf;
	*size = len;
	return 0;
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
	    h->chunk_area_offset < (uint64_t)h->header_size + h->meta_capacity ||
	    h->chunk_area_offset > (UINT64_C(1) << 40)) {
		snprintf(err, errlen, "'%s' has a corrupt header (sizes out of range)", t->path);
		return -1;
	}
	t->header.py_version[sizeof h->py_version - 1] = '\0';
	t->header.executable[sizeof h->executable - 1] = '\0';
	trace_sanitize_string(t->header.py_version);
	trace_sanitize_string(t->header.executable);
	return 0;
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
		note(t, "no usable clock calibration: times are in clock ticks, not ns");
	}
	if (t->ns_per_tick <= 0 || t->ns_per_tick > 1e6) {
		t->ns_per_tick = 1.0;
		t->calibrated = false;
		note(t, "clock calibration out of range: times are in clock ticks, not ns");
	}
}

static uint64_t to_ns(const struct trace *t, uint64_t clock)
{
	if (clock <= t->header.start.clock)
		return 0;
	double ns = (double)(clock - t->header.start.clock) * t->ns_per_tick;
	/* a hostile clock or rate: 2^63 ns (292 years) is as far as times go,
	 * past it the conversion is undefined */
	return ns < 9223372036854775808.0 ? (uint64_t)ns : UINT64_C(1) << 63;
}

static void read_meta(struct trace *t, const unsigned char *data, size_t size)
{
	const struct gtr_file_header *h = &t->header;
	uint64_t start = h->header_size, end = start + h->meta_used;
	if (end > size) {
		note(t, "metadata log cut short by the end of the file");
		t->cut_short = true;
		end = size;
	}
	uint64_t off = start;
	while (off + sizeof(struct gtr_meta_record) <= end) {
		struct gtr_meta_record r;
		memcpy(&r, data + off, sizeof r);
		if (r.size < sizeof r || r.size % 8 || off + r.size > end) {
			note(t, "corrupt metadata record at offset %llu; the rest of the log is skipped",
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
		note(t, "the metadata log was full: some modules or GILs are not listed");
}

struct chunk_ref {
	uint64_t index;
	struct gtr_chunk_header h;
};

static int chunk_order(const void *a, const void *b)
{
	const struct chunk_ref *x = a, *y = b;
	if (x->h.thread_serial != y->h.thread_serial)
		return x->h.thread_serial < y->h.thread_serial ? -1 : 1;
	if (x->h.seq != y->h.seq)
		return x->h.seq < y->h.seq ? -1 : 1;
	return 0;
}

/* Append a stack's frames to the pool; payload gets { first, count }.
 * False when out of memory (the stack is dropped, with a note). */
static bool add_frames(struct trace *t, const unsigned char *p, unsigned count, uint64_t *payload)
{
	if (t->stack_frame_count + count > t->stack_frame_cap) {
		size_t cap = t->stack_frame_cap ? 2 * t->stack_frame_cap : 1024;
		while (cap < t->stack_frame_count + count)
			cap *= 2;
		uint64_t *grown = cap <= UINT32_MAX ? realloc(t->stack_frames, cap * sizeof *grown) : NULL;
		if (!grown) {
			note(t, "out of memory for stacks: some are left out");
			return false;
		}
		t->stack_frames = grown;
		t->stack_frame_cap = cap;
	}
	memcpy(t->stack_frames + t->stack_frame_count, p, count * 8);
	payload[0] = t->stack_frame_count;
	payload[1] = count;
	t->stack_frame_count += count;
	return true;
}

/* The payload words of an event of a type newer than this reader, from the
 * writer's table in the header (minor 2+), or -1 if it did not say.  The
 * first such event of each type is noted: its meaning is unknown here. */
static int newer_type_words(struct trace *t, unsigned type, unsigned arg)
{
	if (t->header.version_minor < 2 || type >= GTR_EVENT_TYPES_MAX || !t->header.event_words[type])
		return -1;
	if (!(t->newer_types_noted & (UINT64_C(1) << type))) {
		t->newer_types_noted |= UINT64_C(1) << type;
		note(t, "events of type %u, newer than this giltrace, were skipped (a newer giltrace reads them)",
		     type);
	}
	unsigned words = t->header.event_words[type];
	return (int)(words == GTR_EVENT_WORDS_IN_ARG ? arg : words);
}

/* Decode one chunk's events into out (room for `used / 8` events), none
 * earlier than `floor` (the thread's previous event). */
static size_t decode_chunk(struct trace *t, const unsigned char *p, const struct chunk_ref *c, uint32_t thread,
                           uint64_t floor, struct trace_event *out)
{
	uint64_t prev = c->h.first_clock;
	size_t n = 0, off = 0, used = c->h.used;
	while (off + 8 <= used) {
		uint64_t word;
		memcpy(&word, p + off, 8);
		unsigned type = gtr_event_word_type(word);
		unsigned arg = gtr_event_word_arg(word);
		if (type >= GTR_EV_COUNT && newer_type_words(t, type, arg) >= 0) {
			/* a type newer than this reader: the writer said its size */
			off += 8 + (size_t)newer_type_words(t, type, arg) * 8;
			continue;
		}
		if (type == GTR_EV_NONE || type >= GTR_EV_COUNT) {
			note(t, "thread %u: unknown event type %u in chunk %llu; the rest of the chunk is skipped",
			     c->h.thread_serial, type, (unsigned long long)c->index);
			break;
		}
		if (type == GTR_EV_STACK && (arg == 0 || arg > GTR_STACK_MAX_FRAMES)) {
			note(t, "thread %u: a stack of %u frames in chunk %llu; the rest of the chunk is skipped",
			     c->h.thread_serial, arg, (unsigned long long)c->index);
			break;
		}
		unsigned words = gtr_event_words(type, arg);
		if (off + 8 + words * 8 > used) {
			note(t, "thread %u: event cut short at the end of chunk %llu", c->h.thread_serial,
			     (unsigned long long)c->index);
			break;
		}
		uint64_t low = gtr_event_word_clock(word);
		uint64_t clock = prev + ((low - prev) & GTR_CLOCK_MASK);
		struct trace_event *e = &out[n];
		e->payload[0] = e->payload[1] = 0;
		if (type == GTR_EV_STACK) {
			/* The writer puts a stack right after its event, in the
			 * same chunk: any other stack is damage.  Kept in the pool;
			 * merge_threads() attaches it to its event. */
			if (n == 0 || out[n - 1].type == GTR_EV_STACK) {
				note(t, "thread %u: a stack without its event in chunk %llu; left out", c->h.thread_serial,
				     (unsigned long long)c->index);
				type = GTR_EV_NONE;
			} else if (!add_frames(t, p + off + 8, words, e->payload)) {
				type = GTR_EV_NONE;
			}
		} else {
			memcpy(e->payload, p + off + 8, words * 8);
		}
		off += 8 + words * 8;
		if (type == GTR_EV_NONE)
			continue;
		if (type == GTR_EV_CLOCK) {
			prev = e->payload[0];
			continue;
		}
		if (clock < floor) {
			/* each thread's stream must run forward: the merge and
			 * everything after it rely on that */
			note(t, "thread %u: chunk %llu goes back in time; the rest of it is skipped", c->h.thread_serial,
			     (unsigned long long)c->index);
			break;
		}
		prev = clock;
		e->clock = clock;
		e->ns = to_ns(t, clock);
		e->thread = thread;
		e->type = (uint8_t)type;
		e->arg = (uint8_t)arg;
		if (type == GTR_EV_THREAD_NAME) {
			memcpy(t->threads[thread].name, e->payload, 16);
			t->threads[thread].name[16] = '\0';
			trace_sanitize_string(t->threads[thread].name);
		}
		n++;
	}
	return n;
}

/* ---- losses ------------------------------------------------------------------ */

/* Losses are added thread by thread, each thread's in time order. */
static int add_loss(struct trace *t, struct trace_loss loss)
{
	struct trace_thread *th = &t->threads[loss.thread];
	if (!th->loss_count)
		th->first_loss = t->loss_count;
	th->loss_count++;
	if ((t->loss_count & (t->loss_count - 1)) == 0) { /* grow at powers of two */
		struct trace_loss *grown = realloc(t->losses, (t->loss_count ? 2 * t->loss_count : 1) * sizeof *grown);
		if (!grown)
			return -1;
		t->losses = grown;
	}
	t->losses[t->loss_count++] = loss;
	t->chunks_lost += loss.chunks;
	return 0;
}

/* The largest record the shim writes (an event of 3 words and a stack of
 * GTR_STACK_MAX_FRAMES), plus the 2 words of slack it keeps: a chunk with
 * less room than this left may have been given up for a new one. */
#define MAX_RECORD_BYTES (8u * (3u + 1u + GTR_STACK_MAX_FRAMES + 2u))

/* After a thread's last kept chunk: were later events of it lost?  Only
 * where chunks are known to be missing (a cut copy: a thread moves to a
 * new chunk only when its current one is full) or the shim stopped
 * recording (out of space: any thread that had not ended). */
static bool lost_after_last_chunk(const struct trace *t, const struct chunk_ref *last, const struct trace_event *events,
                                  size_t first, size_t n)
{
	if (n > first && (events[n - 1].type == GTR_EV_THREAD_EXIT || events[n - 1].type == GTR_EV_THREAD_PAUSE))
		return false;
	if (t->out_of_space)
		return true;
	uint32_t room = t->header.chunk_size - GTR_CHUNK_HEADER_SIZE;
	return t->chunks_in_file < t->header.chunks_allocated && room - last->h.used < MAX_RECORD_BYTES;
}

/* The end of thread's chunks (the last one is `last`, its events end at
 * n): the loss still waiting for a next event, or one after the last
 * chunk, runs to the end. */
static int end_thread_losses(struct trace *t, uint32_t thread, const struct chunk_ref *last,
                             const struct trace_event *events, size_t n, struct trace_loss *pending, bool *has_pending)
{
	struct trace_thread *th = &t->threads[thread];
	th->event_count = n - th->first_event;
	if (!*has_pending && !lost_after_last_chunk(t, last, events, th->first_event, n))
		return 0;
	if (!*has_pending)
		*pending = (struct trace_loss){ TRACE_LOSS_TRAILING, thread, n > th->first_event ? events[n - 1].ns : 0, 0, 0 };
	pending->to_ns = UINT64_MAX;
	*has_pending = false;
	th->events_lost = true;
	return add_loss(t, *pending);
}

static int read_chunks(struct trace *t, const unsigned char *data, size_t size, struct trace_event **per_thread,
                       size_t *total)
{
	const struct gtr_file_header *h = &t->header;
	uint64_t in_file = size > h->chunk_area_offset ? (size - h->chunk_area_offset) / h->chunk_size : 0;
	uint64_t count = h->chunks_allocated;
	if (count > in_file) {
		note(t, "the file ends after %llu of %llu chunks: it was cut short", (unsigned long long)in_file,
		     (unsigned long long)count);
		t->cut_short = true;
		count = in_file;
	}
	t->chunks_in_file = count;
	struct chunk_ref *refs = calloc(count ? count : 1, sizeof *refs);
	if (!refs)
		return -1;
	size_t nrefs = 0, capacity_events = 0;
	for (uint64_t i = 0; i < count; i++) {
		struct chunk_ref *r = &refs[nrefs];
		r->index = i;
		memcpy(&r->h, data + h->chunk_area_offset + i * h->chunk_size, sizeof r->h);
		if (r->h.magic == 0)
			continue; /* handed out, not yet started, or a ring block's spare */
		if (r->h.magic != GTR_CHUNK_MAGIC || r->h.thread_serial == 0) {
			note(t, "chunk %llu has a corrupt header; skipped", (unsigned long long)i);
			continue;
		}
		uint32_t room = h->chunk_size - GTR_CHUNK_HEADER_SIZE;
		if (r->h.used > room || r->h.used % 8) {
			uint32_t keep = (r->h.used > room ? room : r->h.used) & ~7u;
			note(t, "chunk %llu claims %u bytes of events; read %u", (unsigned long long)i, r->h.used, keep);
			r->h.used = keep;
		}
		capacity_events += r->h.used / 8;
		nrefs++;
	}
	qsort(refs, nrefs, sizeof *refs, chunk_order);

	for (size_t i = 0; i < nrefs; i++)
		if (i == 0 || refs[i].h.thread_serial != refs[i - 1].h.thread_serial)
			t->thread_count++;
	t->threads = calloc(t->thread_count ? t->thread_count : 1, sizeof *t->threads);
	struct trace_event *events = malloc((capacity_events ? capacity_events : 1) * sizeof *events);
	if (!t->threads || !events) {
		free(refs);
		free(events);
		return -1;
	}
	size_t n = 0, thread = 0;
	/* a loss waiting for the thread's next kept event, its to_ns */
	struct trace_loss pending = { 0 };
	bool has_pending = false;
	int rc = 0;
	for (size_t i = 0; i < nrefs && rc == 0; i++) {
		const struct chunk_ref *r = &refs[i];
		struct trace_thread *th = &t->threads[thread];
		if (i == 0 || r->h.thread_serial != refs[i - 1].h.thread_serial) {
			if (i > 0) {
				rc = end_thread_losses(t, (uint32_t)thread, &refs[i - 1], events, n, &pending, &has_pending);
				th = &t->threads[++thread];
			}
			th->serial = r->h.thread_serial;
			th->tid = r->h.tid;
			th->pthread_id = r->h.pthread_id;
			th->first_event = n;
			th->events_lost = r->h.seq != 0;
			if (r->h.seq != 0) {
				pending = (struct trace_loss){ TRACE_LOSS_LEADING, (uint32_t)thread, 0, 0, r->h.seq };
				has_pending = true;
			}
		} else if (r->h.seq != refs[i - 1].h.seq + 1) {
			th->events_lost = true;
			uint64_t missing = r->h.seq > refs[i - 1].h.seq ? r->h.seq - refs[i - 1].h.seq - 1u : 0;
			if (has_pending) {
				pending.chunks += missing; /* after chunks that held no event */
			} else {
				pending = (struct trace_loss){ TRACE_LOSS_GAP, (uint32_t)thread,
					                       n > th->first_event ? events[n - 1].ns : 0, 0, missing };
				has_pending = true;
			}
		}
		const unsigned char *p = data + h->chunk_area_offset + r->index * h->chunk_size + GTR_CHUNK_HEADER_SIZE;
		uint64_t floor = n > th->first_event ? events[n - 1].clock : 0;
		size_t decoded = decode_chunk(t, p, r, (uint32_t)thread, floor, events + n);
		if (has_pending && decoded) {
			pending.to_ns = events[n].ns;
			rc = add_loss(t, pending);
			has_pending = false;
		}
		n += decoded;
	}
	if (nrefs && rc == 0)
		rc = end_thread_losses(t, (uint32_t)thread, &refs[nrefs - 1], events, n, &pending, &has_pending);
	free(refs);
	if (rc != 0) {
		free(events);
		return -1;
	}
	for (size_t i = 0; i < t->thread_count; i++)
		t->threads_with_loss += t->threads[i].events_lost;
	if (trace_index_losses(t) != 0) {
		free(events);
		return -1;
	}
	*per_thread = events;
	*total = n;
	return 0;
}

/* Merge the per-thread streams (each in time order) into one, by raw
 * clock (ns may round two ticks to one value), ties broken by thread
 * serial: a binary heap of stream heads. */
static int merge_threads(struct trace *t, const struct trace_event *per_thread, size_t total)
{
	size_t k = t->thread_count;
	t->events = malloc((total ? total : 1) * sizeof *t->events);
	size_t *heap = malloc((k ? k : 1) * sizeof *heap);
	size_t *pos = calloc(k ? k : 1, sizeof *pos);
	if (!t->events || !heap || !pos) {
		free(heap);
		free(pos);
		return -1;
	}
#define HEAD(s) (per_thread[t->threads[s].first_event + pos[s]])
#define BEFORE(a, b) (HEAD(a).clock < HEAD(b).clock || (HEAD(a).clock == HEAD(b).clock && (a) < (b)))
	size_t hn = 0;
	for (size_t s = 0; s < k; s++) {
		if (!t->threads[s].event_count)
			continue;
		size_t i = hn++;
		heap[i] = s;
		while (i && BEFORE(heap[i], heap[(i - 1) / 2])) {
			size_t tmp = heap[i];
			heap[i] = heap[(i - 1) / 2];
			heap[(i - 1) / 2] = tmp;
			i = (i - 1) / 2;
		}
	}
	size_t out = 0, orphans = 0, stack_cap = 0;
	while (hn) {
		size_t s = heap[0];
		const struct trace_event *e = &HEAD(s);
		if (e->type != GTR_EV_STACK) {
			t->events[out++] = *e;
		} else if (out && t->events[out - 1].thread == e->thread && t->events[out - 1].clock == e->clock) {
			/* a stack follows its event in its thread's stream, with its
			 * clock, so the merge puts it right after that event */
			if (t->stack_count == stack_cap) {
				size_t cap = stack_cap ? 2 * stack_cap : 64;
				struct trace_stack *grown = realloc(t->stacks, cap * sizeof *grown);
				if (!grown) {
					free(heap);
					free(pos);
					return -1;
				}
				t->stacks = grown;
				stack_cap = cap;
			}
			t->stacks[t->stack_count++] =
			        (struct trace_stack){ out - 1, (uint32_t)e->payload[0], (uint32_t)e->payload[1] };
		} else {
			orphans++; /* its event was cut (a corrupt chunk) */
		}
		if (++pos[s] == t->threads[s].event_count)
			heap[0] = heap[--hn];
		for (size_t i = 0;;) {
			size_t l = 2 * i + 1, r = l + 1, m = i;
			if (l < hn && BEFORE(heap[l], heap[m]))
				m = l;
			if (r < hn && BEFORE(heap[r], heap[m]))
				m = r;
			if (m == i)
				break;
			size_t tmp = heap[i];
			heap[i] = heap[m];
			heap[m] = tmp;
			i = m;
		}
	}
#undef BEFORE
#undef HEAD
	t->event_count = out;
	if (orphans)
		note(t, "%zu stacks whose events were lost are left out", orphans);
	free(heap);
	free(pos);
	return 0;
}

int trace_load(struct trace *t, const char *path, char *err, size_t errlen)
{
	memset(t, 0, sizeof *t);
	t->path = path;
	unsigned char *data = NULL;
	size_t size = 0;
	if (read_trace_bytes(path, &data, &size, err, errlen) != 0)
		return -1;
	if (check_header(t, data, size, err, errlen) != 0) {
		free(data);
		return -1;
	}
	setup_clock(t);
	t->not_closed = !(t->header.flags & GTR_FLAG_CLOSED);
	t->out_of_space = t->header.flags & (GTR_FLAG_OUT_OF_SPACE | GTR_FLAG_FILE_LOST);
	t->truncated = t->not_closed || t->out_of_space;
	read_meta(t, data, size);
	struct trace_event *per_thread = NULL;
	size_t total = 0;
	int rc = read_chunks(t, data, size, &per_thread, &total);
	free(data);
	if (rc == 0)
		rc = merge_threads(t, per_thread, total);
	free(per_thread);
	if (rc != 0) {
		snprintf(err, errlen, "cannot read trace '%s': out of memory", path);
		return -1;
	}
	const struct gtr_file_header *h = &t->header;
	if (h->flags & GTR_FLAG_OUT_OF_SPACE)
		note(t, "the traced process ran out of trace space: later events were not recorded");
	if (h->flags & GTR_FLAG_FILE_LOST)
		note(t, "the traced process lost its trace file (renamed, replaced or removed): later events were "
		        "not recorded");
	t->last_event_ns = t->event_count ? t->events[t->event_count - 1].ns : 0;
	t->end_ns = t->last_event_ns;
	if ((h->flags & GTR_FLAG_CLOSED) && h->end.clock > h->start.clock && to_ns(t, h->end.clock) > t->end_ns)
		t->end_ns = to_ns(t, h->end.clock);
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

void trace_free(struct trace *t)
{
	free(t->threads);
	free(t->events);
	free(t->gils);
	for (size_t i = 0; i < t->module_count; i++)
		free(t->modules[i].path);
	free(t->modules);
	free(t->stacks);
	free(t->stack_frames);
	free(t->losses);
	free(t->loss_gaps.items);
	free(t->loss_all.items);
	lines_free(t->notes, t->note_count);
	memset(t, 0, sizeof *t);
}
