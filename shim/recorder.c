/*
 * recorder.c: writing the trace file (format: include/trace-format.h).
 *
 * Design note.  The trace is a file mapped MAP_SHARED into a large address
 * range reserved at start (PROT_NONE), so that growing it maps the new
 * extent right after the old one and chunk addresses never move.  Space is
 * preallocated with fallocate() before it is mapped: a full disk shows up
 * as "out of space" in the header, never as SIGBUS in the traced program.
 *
 * Each thread writes its own chunk with plain stores and then publishes
 * the new length with a release store of chunk->used (the commit marker),
 * so no lock is taken per event and a reader of a crashed process's file
 * sees every event up to the last commit.  The allocation lock (our own
 * mutex, never one of the program's) is taken only to hand out chunks and
 * append metadata, with no other lock acquired inside it.
 *
 * Clock: the TSC when the CPU says it is invariant (constant rate, synced
 * across cores), else CLOCK_MONOTONIC in ns; the header says which.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "shim.h"
#include "version.h"

#define CHUNK_SIZE (64u * 1024)
#define META_CAPACITY (64u * 1024)
#define INITIAL_CHUNKS 16u
#define MAX_GROWTH_CHUNKS 1024u
#define RESERVE_MAX (64ull << 30)
#define RESERVE_MIN (256ull << 20)
#define EVENT_AREA (CHUNK_SIZE - GTR_CHUNK_HEADER_SIZE)
#define MAX_MODULES 1024
#define MAX_FREE_RINGS 4096

/* The open trace of this process.  Everything but `generation` is written
 * under `lock` (or before activation, single-threaded); see each field. */
static struct {
	pthread_mutex_t lock;         /* allocation lock: chunks, growth, meta */
	bool open;                    /* a trace is mapped and not yet closed */
	pid_t pid;                    /* process the trace belongs to */
	struct trace_file file;       /* where the trace is (no descriptor kept) */
	char *base;                   /* start of the reserved address range */
	size_t reserved;              /* bytes reserved at base */
	size_t mapped;                /* bytes of the file mapped (= file size) */
	struct gtr_file_header *hdr;  /* == base */
	uint64_t chunk_capacity;      /* chunks that fit in `mapped` */
	uint32_t generation;          /* bumped in a fork child; TLS compares */
	uint32_t next_serial;         /* thread serials handed out */
	bool closed;                  /* no more chunks are handed out */
	bool child_pending;           /* fork child: open a trace at the first event */
	bool use_tsc;                 /* clock source, fixed at open */
	/* Ring mode: blocks of threads that ended, oldest first, for threads
	 * that start later, so that the file follows the threads alive at
	 * once, not every thread ever started.  A FIFO: the blocks of threads
	 * that ended last (during finalization, the ones that matter) are
	 * overwritten last. */
	uint32_t free_rings[MAX_FREE_RINGS];
	uint32_t free_head, free_count;
	uintptr_t modules[MAX_MODULES]; /* load addresses already recorded */
	unsigned module_count;
} rec = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- clock --------------------------------------------------------------- */

static bool clock_tsc;  /* set once before activation, read on every event */

static bool tsc_is_invariant(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(0x80000007, &a, &b, &c, &d))
		return false;
	return d & (1u << 8);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shim_clock_now(void)
{
	return likely(clock_tsc) ? __rdtsc() : mono_ns();
}

static struct gtr_clock_pair clock_pair(void)
{
	/* Bracket the monotonic read with two clock reads and keep their
	 * midpoint, so the pair's error is half the read time. */
	uint64_t c0 = shim_clock_now();
	uint64_t ns = mono_ns();
	uint64_t c1 = shim_clock_now();
	return (struct gtr_clock_pair){ .clock = c0 + (c1 - c0) / 2, .mono_ns = ns };
}

/* ---- growth ------------------------------------------------------------------ */

/* Preallocate and map the file up to new_size: 0, or an errno (ESTALE:
 * the trace's name leads to another file now).  Called with rec.lock held
 * (or before activation).  The descriptor lives only for this call. */
static int grow_to(size_t new_size)
{
	if (new_size <= rec.mapped)
		return 0;
	if (new_size > rec.reserved)
		return ENOMEM;
	int fd = trace_file_reopen(&rec.file, O_RDWR);
	if (fd < 0)
		return errno;
	int err = trace_file_preallocate(fd, (off_t)rec.mapped, (off_t)(new_size - rec.mapped));
	if (!err && mmap(rec.base + rec.mapped, new_size - rec.mapped, PROT_READ | PROT_WRITE,
	                 MAP_SHARED | MAP_FIXED, fd, (off_t)rec.mapped) == MAP_FAILED)
		err = errno;
	close(fd);
	if (err)
		return err;
	rec.mapped = new_size;
	rec.chunk_capacity = (new_size - rec.hdr->chunk_area_offset) / CHUNK_SIZE;
	return 0;
}

/* Recording stops for good: mark why in the header and say so in one line
 * (the program runs on).  Called with rec.lock held. */
static void stop_growing(int err)
{
	uint32_t flag = err == ESTALE || err == ENOENT ? GTR_FLAG_FILE_LOST : GTR_FLAG_OUT_OF_SPACE;
	__atomic_or_fetch(&rec.hdr->flags, flag, __ATOMIC_RELEASE);
	const char *why = err == ESTALE ? "its name leads to another file now (renamed or replaced)"
	                  : err == ENOMEM ? "the address range reserved for it is full"
	                  : strerror(err);
	const char *parts[] = { "trace '", rec.file.path, "': ", why,
		                "; recording stopped, the program runs on (giltrace check reads what was recorded)" };
	shim_say("warning", parts, 5);
}

/* Make room for chunks [0, need); called with rec.lock held.  Grows by
 * doubling (at most MAX_GROWTH_CHUNKS at a time), else by what is needed. */
static bool ensure_chunks(uint64_t need)
{
	if (need <= rec.chunk_capacity)
		return true;
	if (rec.hdr->flags & (GTR_FLAG_OUT_OF_SPACE | GTR_FLAG_FILE_LOST))
		return false;
	uint64_t step = rec.chunk_capacity < MAX_GROWTH_CHUNKS ? rec.chunk_capacity : MAX_GROWTH_CHUNKS;
	uint64_t target = rec.chunk_capacity + (step ? step : INITIAL_CHUNKS);
	if (target < need)
		target = need;
	int err = grow_to(rec.hdr->chunk_area_offset + target * CHUNK_SIZE);
	if (err == ENOSPC || err == EFBIG || err == EDQUOT)
		err = grow_to(rec.hdr->chunk_area_offset + need * CHUNK_SIZE);
	if (err)
		stop_growing(err);
	return err == 0;
}

static struct gtr_chunk_header *chunk_at(uint64_t index)
{
	return (struct gtr_chunk_header *)(rec.base + rec.hdr->chunk_area_offset + index * CHUNK_SIZE);
}

/* ---- opening and closing ------------------------------------------------------ */

static void fill_header(uint32_t extra_flags)
{
	struct gtr_file_header *h = rec.hdr;
	memcpy(h->magic, GTR_MAGIC, 8);
	h->version_major = GTR_VERSION_MAJOR;
	h->version_minor = GTR_VERSION_MINOR;
	h->header_size = GTR_HEADER_SIZE;
	h->chunk_size = CHUNK_SIZE;
	h->chunk_area_offset = GTR_HEADER_SIZE + META_CAPACITY;
	h->meta_capacity = META_CAPACITY;
	h->meta_used = 0;
	h->chunks_allocated = 0;
	h->ring_chunks = shim_options.mode == SHIM_MODE_RING
	                         ? (uint32_t)((uint64_t)shim_options.ring_size_mib * 1024 * 1024 / CHUNK_SIZE)
	                         : 0;
	h->flags = extra_flags | (h->ring_chunks ? GTR_FLAG_RING : 0) | (clock_tsc ? GTR_FLAG_CLOCK_TSC : 0) |
	           (shim_python.gil_offsets_disagree ? GTR_FLAG_GIL_LAYOUT_DISAGREES : 0);
	h->pid = getpid();
	h->ppid = getppid();
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	h->start_realtime_ns = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
	h->start = clock_pair();
	/* A second pair 100 us later calibrates the clock rate for traces
	 * that end without an exit pair (crash, SIGKILL); chunk allocations
	 * refresh it as the run goes on. */
	if (clock_tsc) {
		uint64_t until = mono_ns() + 100000;
		while (mono_ns() < until)
			;
	}
	h->calib = clock_pair();
	h->py_version_hex = shim_python.version_hex;
	h->py_build = shim_python.build;
	snprintf(h->py_version, sizeof h->py_version, "%s", shim_python.version);
	snprintf(h->writer_version, sizeof h->writer_version, "%s", GILTRACE_VERSION);
	ssize_t n = readlink("/proc/self/exe", h->executable, sizeof h->executable - 1);
	h->executable[n > 0 ? n : 0] = '\0';
	h->py_runtime_addr = (uintptr_t)shim_python.runtime;
	h->features = GTR_FEATURE_TSTATE_REUSE | (shim_options.stacks ? GTR_FEATURE_STACKS : 0) |
	              (shim_python.gil_offsets_from_debug ? GTR_FEATURE_GIL_DEBUG_OFFSETS : 0) |
	              (shim_options.stacks && shim_options.py_stack_depth && shim_python.py_frames_readable
	                       ? GTR_FEATURE_PY_STACKS
	                       : 0);
	for (unsigned type = 1; type < GTR_EV_COUNT; type++)
		h->event_words[type] = gtr_event_words_entry(type);
	provoke_write_header(h);
}

static bool open_trace(uint32_t extra_flags)
{
	int fd = trace_file_create(&rec.file, shim_options.output, getpid());
	if (fd < 0)
		return false;
	rec.pid = getpid();
	if (!rec.base) {
		for (size_t size = RESERVE_MAX; size >= RESERVE_MIN; size /= 2) {
			void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (p != MAP_FAILED) {
				rec.base = p;
				rec.reserved = size;
				break;
			}
		}
	}
	size_t initial = GTR_HEADER_SIZE + META_CAPACITY + (size_t)INITIAL_CHUNKS * CHUNK_SIZE;
	rec.hdr = (struct gtr_file_header *)rec.base;
	rec.mapped = 0;
	rec.chunk_capacity = 0;
	int err = rec.base ? trace_file_preallocate(fd, 0, (off_t)initial) : ENOMEM;
	if (!err && mmap(rec.base, initial, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
		err = errno;
	close(fd);
	if (err) {
		const char *parts[] = { "cannot preallocate trace '", rec.file.path, "': ", strerror(err),
			                "; tracing is off" };
		shim_say("error", parts, 5);
		trace_file_remove(&rec.file);
		return false;
	}
	rec.mapped = initial;
	fill_header(extra_flags);
	rec.chunk_capacity = INITIAL_CHUNKS;
	rec.open = true;
	rec.closed = false;
	rec.generation++;
	rec.next_serial = 0;
	rec.free_head = rec.free_count = 0;
	rec.module_count = 0;
	return true;
}

bool recorder_open(void)
{
	clock_tsc = tsc_is_invariant();
	if (!open_trace(0))
		return false;
	recorder_note_modules();
	return true;
}

void recorder_close(void)
{
	shim_real.mutex_lock(&rec.lock);
	if (rec.open && !rec.closed) {
		rec.closed = true;
		rec.hdr->end = clock_pair();
		uint64_t used = rec.hdr->chunk_area_offset + rec.hdr->chunks_allocated * CHUNK_SIZE;
		__atomic_or_fetch(&rec.hdr->flags, GTR_FLAG_CLOSED, __ATOMIC_RELEASE);
		/* Threads still running keep writing into chunks below `used`;
		 * no chunk beyond it is handed out once closed is set.  The
		 * unused preallocation is trimmed only if the name still leads
		 * to our file: never truncate someone else's. */
		int fd = trace_file_reopen(&rec.file, O_RDWR);
		if (fd >= 0) {
			if (ftruncate(fd, (off_t)used) != 0) {
				/* the unused preallocation stays; the trace is still valid */
			}
			close(fd);
		}
	}
	shim_real.mutex_unlock(&rec.lock);
}

/* async-signal-safe: stores only.  For _exit(), which a signal handler
 * may call while this thread holds rec.lock: the trace is marked closed
 * with its end clock, and the unused tail stays (readers ignore it). */
void recorder_close_signal_safe(void)
{
	if (!rec.open || rec.closed)
		return;
	rec.closed = true;
	rec.hdr->end = clock_pair();
	__atomic_or_fetch(&rec.hdr->flags, GTR_FLAG_CLOSED, __ATOMIC_RELEASE);
}

/* async-signal-safe (open, fstat, unlink, close).  Before exec: a fork
 * child's trace covers only the moments between fork and exec, which a
 * child that execs (subprocess with preexec_fn, os.fork + os.exec*) spends
 * in CPython's own after-fork code: removed, so that such children leave
 * nothing.  Any other trace is closed as at _exit. */
void recorder_close_before_exec(void)
{
	if (!rec.open || rec.closed)
		return;
	if (!(rec.hdr->flags & GTR_FLAG_FORK_CHILD)) {
		recorder_close_signal_safe();
		return;
	}
	rec.closed = true;
	trace_file_remove(&rec.file);
}

bool recorder_stopped_early(void)
{
	return rec.hdr && (rec.hdr->flags & (GTR_FLAG_FILE_LOST | GTR_FLAG_OUT_OF_SPACE));
}

int recorder_reopen_for_reading(void)
{
	return rec.open ? trace_file_reopen(&rec.file, O_RDONLY) : -1;
}

/* In a fork child (one thread, the one that forked): the parent's mapping
 * and file stay the parent's.  The child gets a trace of its own only when
 * it records its first event (it does GIL work): a child that execs at
 * once, as subprocess's do, costs nothing and leaves no file. */
void recorder_forget_parent_in_child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	rec.lock = fresh; /* another parent thread may have held it at fork */
	rec.open = false;
	rec.child_pending = true;
	munmap(rec.base, rec.reserved);
	rec.base = NULL;
	rec.hdr = NULL;
	rec.generation++; /* every thread's chunk was the parent's */
}

/* Open the fork child's trace at its first event; true once a trace is
 * open.  The first caller opens it; a thread racing it (the child started
 * threads before any GIL work) drops its event. */
static bool open_child_trace(bool *opened)
{
	if (!__atomic_exchange_n(&rec.child_pending, false, __ATOMIC_ACQ_REL))
		return __atomic_load_n(&rec.open, __ATOMIC_ACQUIRE);
	shim_real.mutex_lock(&rec.lock);
	bool ok = open_trace(GTR_FLAG_FORK_CHILD);
	shim_real.mutex_unlock(&rec.lock);
	if (!ok) {
		shim_state = SHIM_STOPPED;
		return false;
	}
	gil_model_write_meta();
	recorder_note_modules();
	*opened = true;
	return true;
}

void recorder_note_capi_routing(uint32_t build_flags, uint32_t got_slots)
{
	shim_real.mutex_lock(&rec.lock);
	if (rec.hdr) {
		rec.hdr->py_build |= build_flags;
		rec.hdr->capi_got_slots = got_slots;
	}
	shim_real.mutex_unlock(&rec.lock);
}

/* async-signal-safe (clock_gettime, atomics).  The header's live
 * finalizing_mono_ns: set once when finalization begins, cleared when the
 * interpreter is initialized again (an embedder's next epoch), so that
 * `run --exit-timeout` times only a process on its way out. */
void recorder_note_finalizing(bool began)
{
	if (!__atomic_load_n(&rec.open, __ATOMIC_ACQUIRE) || rec.closed)
		return;
	uint64_t *field = &rec.hdr->finalizing_mono_ns;
	if (!began) {
		__atomic_store_n(field, 0, __ATOMIC_RELEASE);
		return;
	}
	uint64_t none = 0;
	__atomic_compare_exchange_n(field, &none, mono_ns(), false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

bool recorder_owned_by_this_process(void)
{
	return getpid() == rec.pid;
}

const char *recorder_path(void)
{
	return rec.file.path;
}

uint64_t recorder_bytes_used(void)
{
	return rec.hdr ? rec.hdr->chunk_area_offset + rec.hdr->chunks_allocated * CHUNK_SIZE : 0;
}

/* ---- chunks and events ------------------------------------------------------- */

static void start_chunk(struct shim_thread *t, struct gtr_chunk_header *c, uint64_t now)
{
	__atomic_store_n(&c->used, 0, __ATOMIC_RELEASE);
	c->thread_serial = t->serial;
	c->tid = t->tid;
	c->seq = t->next_seq++;
	c->first_clock = now;
	c->pthread_id = (uint64_t)pthread_self();
	__atomic_store_n(&c->magic, GTR_CHUNK_MAGIC, __ATOMIC_RELEASE);
	t->chunk = c;
	t->used = 0;
	t->last_clock = now;
}

/* The first event of this thread (in this process, since its trace was
 * opened): its serial, and no chunk yet.  async-signal-safe. */
static void first_event_of_thread(struct shim_thread *t)
{
	t->generation = rec.generation;
	t->chunk = NULL;
	t->lost = 0;
	t->next_seq = 0;
	t->ring_first = 0;
	t->serial = __atomic_add_fetch(&rec.next_serial, 1, __ATOMIC_RELAXED);
	t->tid = gettid();
}

/* Give the thread a chunk to write to; false if tracing cannot go on.
 * *child_opened: this call opened a fork child's trace. */
static bool next_chunk(struct shim_thread *t, uint64_t now, bool *child_opened)
{
	if (unlikely(!rec.open) && !open_child_trace(child_opened))
		return false;
	if (t->generation != rec.generation)
		first_event_of_thread(t);
	if (t->lost)
		return false;
	uint32_t ring = rec.hdr->ring_chunks;
	if (ring && t->next_seq > 0) {
		/* ring mode: the thread's block of chunks is allocated; move on
		 * to the next one, re-using the oldest once the ring is full */
		start_chunk(t, chunk_at(t->ring_first + t->next_seq % ring), now);
		return true;
	}
	uint64_t want = ring ? ring : 1;
	uint64_t index = 0;
	bool ok = false;
	shim_real.mutex_lock(&rec.lock);
	if (!rec.closed && ring && rec.free_count) {
		index = rec.free_rings[rec.free_head];
		rec.free_head = (rec.free_head + 1) % MAX_FREE_RINGS;
		rec.free_count--;
		t->ring_first = (uint32_t)index;
		ok = true;
	} else if (!rec.closed) {
		index = rec.hdr->chunks_allocated;
		ok = ensure_chunks(index + want);
		if (ok) {
			__atomic_store_n(&rec.hdr->chunks_allocated, index + want, __ATOMIC_RELEASE);
			t->ring_first = (uint32_t)index;
			if (now - rec.hdr->calib.clock > rec.hdr->calib.clock - rec.hdr->start.clock)
				rec.hdr->calib = clock_pair();
		}
	}
	shim_real.mutex_unlock(&rec.lock);
	if (!ok) {
		t->lost = 1;
		t->chunk = NULL;
		return false;
	}
	start_chunk(t, chunk_at(index), now);
	return true;
}

void recorder_thread_ends(void)
{
	struct shim_thread *t = &shim_self;
	if (!rec.open || t->generation != rec.generation || t->lost || !rec.hdr->ring_chunks || !t->next_seq)
		return;
	shim_real.mutex_lock(&rec.lock);
	if (rec.free_count < MAX_FREE_RINGS) {
		rec.free_rings[(rec.free_head + rec.free_count) % MAX_FREE_RINGS] = t->ring_first;
		rec.free_count++;
	}
	shim_real.mutex_unlock(&rec.lock);
	/* Whatever runs on this thread after its end (TLS destructors) must not
	 * write into a block another thread may own now. */
	t->lost = 1;
	t->chunk = NULL;
}

/* The hot path: one event for the calling thread, stamped `now` or later
 * (each thread's clock never goes back), followed by its stack when
 * nframes > 0 and its Python stack when py_words > 0 (in the same chunk,
 * committed together).  Returns the stamp used.  Called inside
 * shim_enter(); touches only this thread's chunk. */
static uint64_t emit(unsigned type, unsigned arg, const uint64_t *payload, unsigned payload_words, uint64_t now,
                     const uint64_t *frames, unsigned nframes, const uint64_t *py, unsigned py_words)
{
	struct shim_thread *t = &shim_self;
	unsigned words = 1u + payload_words;
	unsigned stack_words = (nframes ? 1u + nframes : 0) + (py_words ? 1u + py_words : 0);
	if (unlikely(now < t->last_clock))
		now = t->last_clock;
	if (unlikely(!t->chunk || t->generation != rec.generation ||
	             t->used + (words + stack_words + 2) * 8 > EVENT_AREA)) {
		bool child_opened = false;
		if (!next_chunk(t, now, &child_opened))
			return now;
		if (unlikely(child_opened)) {
			gil_model_child_trace_opened(); /* its first events, before this one */
			test_mark_child_trace_opened();
			if (now < t->last_clock)
				now = t->last_clock;
		}
	}
	uint64_t *p = (uint64_t *)((char *)t->chunk + GTR_CHUNK_HEADER_SIZE + t->used);
	if (unlikely(now - t->last_clock >= UINT64_C(1) << (GTR_CLOCK_BITS - 1))) {
		*p++ = gtr_event_word(GTR_EV_CLOCK, 0, now);
		*p++ = now;
		t->used += 16;
	}
	*p = gtr_event_word(type, arg, now);
	for (unsigned i = 1; i < words; i++)
		p[i] = payload[i - 1];
	if (unlikely(stack_words)) {
		p += words;
		if (nframes) {
			*p = gtr_event_word(GTR_EV_STACK, nframes, now);
			for (unsigned i = 0; i < nframes; i++)
				p[1 + i] = frames[i];
			p += 1 + nframes;
		}
		if (py_words) {
			*p = gtr_event_word(GTR_EV_PY_STACK, py_words, now);
			memcpy(p + 1, py, py_words * 8u);
		}
	}
	t->used += (words + stack_words) * 8;
	t->last_clock = now;
	__atomic_store_n(&t->chunk->used, t->used, __ATOMIC_RELEASE);
	return now;
}

/* For a crash handler: a fresh chunk for a thread whose chunk is full, or
 * that has none yet, only if that takes no wait and no system call: the
 * allocation lock is tried, not waited for (the interrupted code may hold
 * it), and only a chunk already mapped is handed out (no growth).
 * pthread_mutex_trylock() is not on POSIX's async-signal-safe list; on
 * glibc, for this default mutex, it is one compare-and-swap. */
static bool next_chunk_signal_safe(struct shim_thread *t, uint64_t now)
{
	if (!rec.open)
		return false;
	if (rec.hdr->ring_chunks) {
		/* ring mode: the next chunk of its own block, if it has one */
		if (t->generation != rec.generation || t->lost || !t->next_seq)
			return false;
		start_chunk(t, chunk_at(t->ring_first + t->next_seq % rec.hdr->ring_chunks), now);
		return true;
	}
	if (t->generation != rec.generation)
		first_event_of_thread(t);
	if (t->lost || shim_real.mutex_trylock(&rec.lock) != 0)
		return false;
	uint64_t index = rec.hdr->chunks_allocated;
	bool ok = !rec.closed && index + 1 <= rec.chunk_capacity;
	if (ok)
		__atomic_store_n(&rec.hdr->chunks_allocated, index + 1, __ATOMIC_RELEASE);
	shim_real.mutex_unlock(&rec.lock);
	if (ok)
		start_chunk(t, chunk_at(index), now);
	return ok;
}

void recorder_set_flag(uint32_t flag)
{
	if (rec.open && rec.pid == getpid())
		__atomic_or_fetch(&rec.hdr->flags, flag, __ATOMIC_RELEASE);
}

bool recorder_emit_crash_signal_safe(unsigned arg, const uint64_t *payload, const uint64_t *frames, unsigned nframes,
                                     const uint64_t *py, unsigned py_words)
{
	struct shim_thread *t = &shim_self;
	uint64_t now = shim_clock_now();
	if (nframes > GTR_STACK_MAX_FRAMES)
		nframes = GTR_STACK_MAX_FRAMES;
	if (py_words > GTR_PY_STACK_MAX_WORDS)
		py_words = 0;
	unsigned words = 1u + gtr_event_payload_words[GTR_EV_CRASH] + (nframes ? 1u + nframes : 0) +
	                 (py_words ? 1u + py_words : 0);
	if (!rec.open || rec.pid != getpid())
		return false; /* no trace, or a vfork child's view of its parent's */
	if ((!t->chunk || t->generation != rec.generation || t->used + (words + 2) * 8 > EVENT_AREA) &&
	    !next_chunk_signal_safe(t, now))
		return false;
	emit(GTR_EV_CRASH, arg, payload, gtr_event_payload_words[GTR_EV_CRASH], now, frames, nframes, py, py_words);
	return true;
}

bool recorder_emit_signal_safe(unsigned type, unsigned arg, const uint64_t *payload)
{
	struct shim_thread *t = &shim_self;
	unsigned words = 1u + gtr_event_payload_words[type];
	if (!t->chunk || t->generation != rec.generation || t->used + (words + 2) * 8 > EVENT_AREA)
		return false; /* emit() would take the allocation lock */
	emit(type, arg, payload, gtr_event_payload_words[type], shim_clock_now(), NULL, 0, NULL, 0);
	return true;
}

uint64_t recorder_emit_at(unsigned type, unsigned arg, const uint64_t *payload, uint64_t now)
{
	return emit(type, arg, payload, gtr_event_payload_words[type], now, NULL, 0, NULL, 0);
}

void recorder_emit(unsigned type, unsigned arg, const uint64_t *payload)
{
	emit(type, arg, payload, gtr_event_payload_words[type], shim_clock_now(), NULL, 0, NULL, 0);
}

void recorder_emit_sized(unsigned type, unsigned words, const uint64_t *payload)
{
	emit(type, words, payload, words, shim_clock_now(), NULL, 0, NULL, 0);
}

uint64_t recorder_emit_with_stack_at(unsigned type, unsigned arg, const uint64_t *payload, const uint64_t *frames,
                                     unsigned nframes, const uint64_t *py, unsigned py_words, uint64_t now)
{
	if (nframes > GTR_STACK_MAX_FRAMES)
		nframes = GTR_STACK_MAX_FRAMES;
	if (py_words > GTR_PY_STACK_MAX_WORDS)
		py_words = 0;
	return emit(type, arg, payload, gtr_event_payload_words[type], now, frames, nframes, py, py_words);
}

/* ---- metadata ----------------------------------------------------------------- */

static void meta_append_locked(const void *record, size_t size)
{
	struct gtr_file_header *h = rec.hdr;
	if (h->meta_used + size > h->meta_capacity) {
		__atomic_or_fetch(&h->flags, GTR_FLAG_META_FULL, __ATOMIC_RELEASE);
		return;
	}
	memcpy((char *)h + GTR_HEADER_SIZE + h->meta_used, record, size);
	__atomic_store_n(&h->meta_used, h->meta_used + size, __ATOMIC_RELEASE);
}

void recorder_add_meta(const void *record, size_t size)
{
	shim_real.mutex_lock(&rec.lock);
	if (rec.hdr)
		meta_append_locked(record, size);
	shim_real.mutex_unlock(&rec.lock);
}

bool recorder_add_label(uint32_t id, const char *text, size_t len, size_t keep_free)
{
	struct gtr_meta_label head = { .rec.type = GTR_META_LABEL, .id = id };
	size_t total = (sizeof head + len + 1 + 7) & ~(size_t)7;
	bool added = false;
	if (total > UINT16_MAX)
		return false;
	head.rec.size = (uint16_t)total;
	shim_real.mutex_lock(&rec.lock);
	struct gtr_file_header *h = rec.hdr;
	if (h && h->meta_used + total + keep_free <= h->meta_capacity) {
		/* written in place, committed by meta_used as every record */
		char *at = (char *)h + GTR_HEADER_SIZE + h->meta_used;
		memcpy(at, &head, sizeof head);
		memcpy(at + sizeof head, text, len);
		memset(at + sizeof head + len, 0, total - sizeof head - len);
		__atomic_store_n(&h->meta_used, h->meta_used + total, __ATOMIC_RELEASE);
		added = true;
	}
	shim_real.mutex_unlock(&rec.lock);
	return added;
}

static size_t read_build_id(const struct dl_phdr_info *info, uint8_t *out, size_t max)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		const char *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
			const char *name = p + sizeof *n;
			const char *desc = name + ((n->n_namesz + 3) & ~3u);
			if (desc + n->n_descsz > end)
				break;
			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
				size_t len = n->n_descsz < max ? n->n_descsz : max;
				memcpy(out, desc, len);
				return len;
			}
			p = desc + ((n->n_descsz + 3) & ~3u);
		}
	}
	return 0;
}

static int note_module(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	bool *first = data;
	const char *name = info->dlpi_name;
	char exe[4096];
	if (*first) {
		*first = false;
		if (!name || !*name) {
			ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
			exe[n > 0 ? n : 0] = '\0';
			name = exe;
		}
	}
	if (!name || !*name)
		return 0; /* the vDSO */
	for (unsigned i = 0; i < rec.module_count; i++)
		if (rec.modules[i] == info->dlpi_addr)
			return 0;
	if (rec.module_count == MAX_MODULES)
		return 0;
	rec.modules[rec.module_count++] = info->dlpi_addr;

	union {
		struct gtr_meta_module m;
		char bytes[sizeof(struct gtr_meta_module) + 4096 + 8];
	} r;
	size_t path_len = strlen(name) + 1;
	if (path_len > 4096)
		path_len = 4096;
	memset(&r.m, 0, sizeof r.m);
	r.m.rec.type = GTR_META_MODULE;
	r.m.load_address = info->dlpi_addr;
	r.m.build_id_len = (uint8_t)read_build_id(info, r.m.build_id, sizeof r.m.build_id);
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && ph->p_vaddr + ph->p_memsz > r.m.map_size)
			r.m.map_size = ph->p_vaddr + ph->p_memsz;
	}
	memcpy(r.bytes + sizeof r.m, name, path_len);
	r.bytes[sizeof r.m + path_len - 1] = '\0';
	size_t total = (sizeof r.m + path_len + 7) & ~(size_t)7;
	memset(r.bytes + sizeof r.m + path_len, 0, total - sizeof r.m - path_len);
	r.m.rec.size = (uint16_t)total;
	meta_append_locked(&r, total);
	return 0;
}

void recorder_note_modules(void)
{
	shim_real.mutex_lock(&rec.lock);
	if (rec.hdr) {
		bool first = true;
		dl_iterate_phdr(note_module, &first);
	}
	shim_real.mutex_unlock(&rec.lock);
}
