/*
 * symbolize.c: frames to names with libdwfl.  See symbolize.h.
 *
 * Modules are reported to libdwfl lazily, the first time a frame points
 * into one, so a trace whose findings have no stacks opens no file.  Each
 * distinct address is looked up once (a small open-addressing cache); the
 * strings handed out are copies, sanitised like every string from outside.
 */
#include "symbolize.h"

#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lines.h"

#define MAX_PROBLEMS 32

struct module_state {
	bool tried;
	Dwfl_Module *mod;           /* NULL: no usable file */
	char *name;                 /* base name */
};

struct cached_frame {
	bool used;
	struct frame_info info;
};

struct symbolizer {
	const struct trace *t;
	Dwfl *dwfl;
	Dwfl_Callbacks callbacks;   /* must outlive dwfl */
	char *debuginfo_path;
	struct module_state *mods;  /* parallel to t->modules */
	struct cached_frame *cache;
	size_t cache_cap, cache_count;
	char **strings;             /* every string handed out, for free() */
	size_t string_count, string_cap;
	char **problems;
	size_t problem_count;
};

/* A sanitised copy that lives as long as s; NULL stays NULL. */
static const char *keep(struct symbolizer *s, const char *text)
{
	if (!text)
		return NULL;
	if (s->string_count == s->string_cap) {
		size_t cap = s->string_cap ? 2 * s->string_cap : 64;
		char **grown = realloc(s->strings, cap * sizeof *grown);
		if (!grown)
			return NULL;
		s->strings = grown;
		s->string_cap = cap;
	}
	char *copy = strdup(text);
	if (!copy)
		return NULL;
	trace_sanitize_string(copy);
	s->strings[s->string_count++] = copy;
	return copy;
}

/* ---- finding a module's file ---------------------------------------------- */

enum file_match { FILE_ABSENT, FILE_OTHER_BUILD, FILE_MATCHES };

/* Open path if it is an ELF file with build-id `want` (hex; "" accepts any).
 * Returns the descriptor, or -1 with *why set. */
static int open_matching(const char *path, const char *want, enum file_match *why)
{
	/* the path comes from the trace: never open a FIFO or a device */
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	bool ok = elf && elf_kind(elf) == ELF_K_ELF;
	if (ok && want[0]) {
		const void *id = NULL;
		ssize_t n = dwelf_elf_gnu_build_id(elf, &id);
		char hex[2 * 64 + 1] = "";
		for (ssize_t i = 0; n > 0 && i < n && i < 64; i++)
			snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)id)[i]);
		ok = strcmp(hex, want) == 0;
		if (!ok)
			*why = FILE_OTHER_BUILD;
	}
	if (elf)
		elf_end(elf);
	if (!ok) {
		close(fd);
		return -1;
	}
	*why = FILE_MATCHES;
	return fd;
}

/* dir/.build-id/ab/cdef...[suffix], its path left in `path` */
static int open_in_build_id_tree(const char *dir, const char *id, const char *suffix, enum file_match *why,
                                 char *path, size_t path_size)
{
	if (strlen(id) < 4)
		return -1;
	snprintf(path, path_size, "%s/.build-id/%.2s/%s%s", dir, id, id + 2, suffix);
	enum file_match ignored;
	int fd = open_matching(path, id, &ignored);
	if (fd >= 0)
		*why = FILE_MATCHES;
	return fd;
}

static int find_file(const struct trace_module *tm, const char *name, enum file_match *why, char *found,
                     size_t found_size)
{
	*why = FILE_ABSENT;
	int fd = tm->path[0] == '/' ? open_matching(tm->path, tm->build_id, why) : -1;
	if (fd >= 0) {
		snprintf(found, found_size, "%s", tm->path);
		return fd;
	}
	const char *env = getenv("GILTRACE_SYMBOL_PATH");
	char dirs[8192];
	snprintf(dirs, sizeof dirs, "%s", env ? env : "");
	char *save = NULL;
	for (char *dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(found, found_size, "%s/%s", dir, name);
		enum file_match here = FILE_ABSENT;
		fd = open_matching(found, tm->build_id, &here);
		if (fd < 0 && tm->build_id[0])
			fd = open_in_build_id_tree(dir, tm->build_id, "", &here, found, found_size);
		if (fd < 0 && tm->build_id[0])
			fd = open_in_build_id_tree(dir, tm->build_id, ".debug", &here, found, found_size);
		if (fd >= 0) {
			*why = FILE_MATCHES;
			return fd;
		}
	}
	if (tm->build_id[0])
		return open_in_build_id_tree("/usr/lib/debug", tm->build_id, ".debug", why, found, found_size);
	return -1;
}

static struct module_state *module_for(struct symbolizer *s, const struct trace_module *tm)
{
	struct module_state *ms = &s->mods[tm - s->t->modules];
	if (ms->tried)
		return ms;
	ms->tried = true;
	const char *slash = strrchr(tm->path, '/');
	ms->name = (char *)keep(s, slash ? slash + 1 : tm->path);
	if (!s->dwfl || !ms->name)
		return ms;
	enum file_match why;
	char found[4096];
	int fd = find_file(tm, ms->name, &why, found, sizeof found);
	if (fd >= 0) {
		dwfl_report_begin_add(s->dwfl);
		/* ET_DYN: load_address is the bias (dlpi_addr), hence add_p_vaddr */
		ms->mod = dwfl_report_elf(s->dwfl, ms->name, found, fd, tm->load_address, true);
		dwfl_report_end(s->dwfl, NULL, NULL);
		if (!ms->mod)
			close(fd);
	}
	if (!ms->mod)
		lines_append(&s->problems, &s->problem_count, MAX_PROBLEMS, "%s: %s", tm->path,
		             why == FILE_OTHER_BUILD ? "the file there has another build-id than the traced one "
		                                       "(rebuilt or upgraded since): its frames show module+offset; "
		                                       "put the traced binary in GILTRACE_SYMBOL_PATH"
		             : fd >= 0         ? "elfutils could not read it: its frames show module+offset"
		             : tm->build_id[0] ? "not found with the traced build-id: its frames show module+offset; "
		                                 "put the traced binary in GILTRACE_SYMBOL_PATH"
		                               : "not found: its frames show module+offset; put the traced binary in "
		                                 "GILTRACE_SYMBOL_PATH");
	return ms;
}

/* ---- the symbolizer ------------------------------------------------------------ */

struct symbolizer *symbolizer_new(const struct trace *t)
{
	struct symbolizer *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->t = t;
	s->mods = calloc(t->module_count ? t->module_count : 1, sizeof *s->mods);
	s->cache_cap = 256;
	s->cache = calloc(s->cache_cap, sizeof *s->cache);
	s->debuginfo_path = strdup("+:.debug:/usr/lib/debug");
	if (!s->mods || !s->cache || !s->debuginfo_path) {
		symbolizer_free(s);
		return NULL;
	}
	s->callbacks = (Dwfl_Callbacks){
		.find_elf = dwfl_build_id_find_elf,
		.find_debuginfo = dwfl_standard_find_debuginfo,
		.section_address = dwfl_offline_section_address,
		.debuginfo_path = &s->debuginfo_path,
	};
	elf_version(EV_CURRENT);
	s->dwfl = dwfl_begin(&s->callbacks); /* NULL: every frame is module+offset */
	return s;
}

void symbolizer_free(struct symbolizer *s)
{
	if (!s)
		return;
	if (s->dwfl)
		dwfl_end(s->dwfl);
	for (size_t i = 0; i < s->string_count; i++)
		free(s->strings[i]);
	free(s->strings);
	free(s->mods);
	free(s->cache);
	free(s->debuginfo_path);
	lines_free(s->problems, s->problem_count);
	free(s);
}

size_t symbolizer_problems(const struct symbolizer *s, const char *const **lines)
{
	*lines = (const char *const *)s->problems;
	return s->problem_count;
}

static void resolve(struct symbolizer *s, uint64_t address, struct frame_info *out)
{
	memset(out, 0, sizeof *out);
	out->address = address;
	const struct trace_module *tm = trace_module_of(s->t, address);
	if (!tm)
		return;
	struct module_state *ms = module_for(s, tm);
	out->module = ms->name;
	out->module_offset = address - tm->load_address;
	if (!ms->mod || address == 0)
		return;
	/* a return address: the call is the instruction before it */
	Dwarf_Addr pc = address - 1;
	GElf_Off offset = 0;
	GElf_Sym sym;
	const char *function = dwfl_module_addrinfo(ms->mod, pc, &offset, &sym, NULL, NULL, NULL);
	if (function) {
		out->function = keep(s, function);
		out->function_offset = offset + 1;
	}
	Dwfl_Line *line = dwfl_module_getsrc(ms->mod, pc);
	int lineno = 0;
	const char *file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
	if (file) {
		out->file = keep(s, file);
		out->line = lineno;
	}
}

static size_t slot_of(const struct symbolizer *s, uint64_t address)
{
	size_t i = (size_t)(address * UINT64_C(0x9e3779b97f4a7c15) >> 17) & (s->cache_cap - 1);
	while (s->cache[i].used && s->cache[i].info.address != address)
		i = (i + 1) & (s->cache_cap - 1);
	return i;
}

void symbolizer_lookup(struct symbolizer *s, uint64_t address, struct frame_info *out)
{
	size_t i = slot_of(s, address);
	if (s->cache[i].used) {
		*out = s->cache[i].info;
		return;
	}
	resolve(s, address, out);
	if ((s->cache_count + 1) * 2 > s->cache_cap) {
		struct cached_frame *old = s->cache, *grown = calloc(2 * s->cache_cap, sizeof *grown);
		if (!grown)
			return; /* answered, not cached */
		size_t old_cap = s->cache_cap;
		s->cache = grown;
		s->cache_cap *= 2;
		for (size_t k = 0; k < old_cap; k++)
			if (old[k].used)
				s->cache[slot_of(s, old[k].info.address)] = old[k];
		free(old);
		i = slot_of(s, address);
	}
	s->cache[i].used = true;
	s->cache[i].info = *out;
	s->cache_count++;
}
