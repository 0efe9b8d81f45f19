/*
 * hang-snapshot.c: the snapshot of a hung traced process, taken before run
 * or stress ends it.  See hang-snapshot.h; the file is tools/read/snapshot.h's.
 *
 * The stacks come from elfutils the way eu-stack gets them: report the
 * process's modules from /proc/PID/maps (dwfl_linux_proc_report), attach
 * (dwfl_linux_proc_attach: PTRACE_ATTACH each thread in turn, unwind it
 * with CFI, detach), and walk every thread's frames.  Each thread is
 * stopped only while it is unwound, so the threads are not all seen at one
 * instant; in a hang nothing moves, which is the case this is for.  The
 * frames are symbolised here, while every module is mapped and its file is
 * at hand, so the snapshot reads the same anywhere.
 *
 * Attaching needs ptrace permission: the same user and, with Yama's
 * ptrace_scope 1, being the process's ancestor (run and stress are), root
 * at 2, nobody at 3.  Without it the snapshot keeps the thread list from
 * /proc and says why the stacks are missing; the process is ended anyway.
 */
#include "hang-snapshot.h"

#include <dirent.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trace.h"
#include "usage.h"

#define MAX_FRAMES 64

/* ---- /proc ---------------------------------------------------------------------------- */

/* One line of a small /proc file, without its newline; "" if unreadable. */
static void read_proc_line(const char *path, char *buf, size_t size)
{
	buf[0] = '\0';
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(buf, (int)size, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

/* The state letter and the parent's pid from a /proc/.../stat line (the
 * command name may hold spaces and parentheses: parse after the last ')'). */
static bool parse_stat(const char *line, char *state, pid_t *ppid)
{
	const char *p = strrchr(line, ')');
	int pp;
	char st;
	if (!p || sscanf(p + 1, " %c %d", &st, &pp) != 2)
		return false;
	*state = st;
	*ppid = pp;
	return true;
}

struct proc_entry {
	pid_t pid, ppid;
};

/* root and its descendants, root first; the count in *n (0 if root is gone). */
static pid_t *descendants(pid_t root, size_t *n)
{
	struct proc_entry *all = NULL;
	size_t count = 0, cap = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *end, path[64], line[512], state;
		long pid = strtol(de->d_name, &end, 10);
		pid_t ppid;
		if (*end || pid <= 0)
			continue;
		snprintf(path, sizeof path, "/proc/%ld/stat", pid);
		read_proc_line(path, line, sizeof line);
		if (!parse_stat(line, &state, &ppid) || state == 'Z')
			continue;
		if (count == cap) {
			cap = cap ? 2 * cap : 256;
			struct proc_entry *grown = realloc(all, cap * sizeof *grown);
			if (!grown)
				break;
			all = grown;
		}
		all[count++] = (struct proc_entry){ (pid_t)pid, ppid };
	}
	if (d)
		closedir(d);
	pid_t *out = malloc((count + 1) * sizeof *out);
	*n = 0;
	if (!out) {
		free(all);
		return NULL;
	}
	if (kill(root, 0) == 0 || errno == EPERM)
		out[(*n)++] = root;
	/* breadth first: out grows while it is scanned */
	for (size_t i = 0; i < *n; i++)
		for (size_t k = 0; k < count; k++)
			if (all[k].ppid == out[i] && all[k].pid != root)
				out[(*n)++] = all[k].pid;
	free(all);
	return out;
}

void hang_signal_tree(pid_t root, int sig)
{
	size_t n;
	pid_t *pids = descendants(root, &n);
	for (size_t i = 0; pids && i < n; i++)
		kill(pids[i], sig);
	if (!pids)
		kill(root, sig);
	free(pids);
}

/* Whether pid is gone or a zombie (ended, not yet reaped). */
static bool ended(pid_t pid)
{
	char path[64], line[512], state;
	pid_t ppid;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	read_proc_line(path, line, sizeof line);
	return !parse_stat(line, &state, &ppid) || state == 'Z';
}

void hang_end_tree(pid_t root, int sig, uint64_t grace_ns)
{
	hang_signal_tree(root, sig);
	if (sig == SIGKILL)
		return;
	struct timespec nap = { 0, 20 * 1000000L };
	for (uint64_t waited = 0; waited < grace_ns; waited += (uint64_t)nap.tv_nsec) {
		if (ended(root))
			return;
		nanosleep(&nap, NULL);
	}
	hang_signal_tree(root, SIGKILL);
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

pid_t hang_exit_overdue(char *const *paths, size_t n, pid_t root, uint64_t limit_ns, size_t *which)
{
	uint64_t now = monotonic_ns();
	pid_t found = 0;
	pid_t *tree = NULL;
	size_t tree_n = 0;
	for (size_t i = 0; i < n && !found; i++) {
		struct gtr_file_header h;
		/* finalizing_mono_ns is header minor 5; older headers are zero there */
		if (trace_read_header(paths[i], &h) != 0 || !h.finalizing_mono_ns || h.pid <= 0 ||
		    now < h.finalizing_mono_ns || now - h.finalizing_mono_ns < limit_ns)
			continue;
		/* only a process of this command: a trace's pid may be reused */
		if (!tree && !(tree = descendants(root, &tree_n)))
			break;
		for (size_t k = 0; k < tree_n && !found; k++) {
			if (tree[k] == (pid_t)h.pid && !ended(tree[k])) {
				found = tree[k];
				*which = i;
			}
		}
	}
	free(tree);
	return found;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* A field: tabs and newlines would end it, "" is written as "-". */
static void put_field(FILE *f, const char *s)
{
	fputc('\t', f);
	if (!s || !*s) {
		fputc('-', f);
		return;
	}
	for (; *s; s++)
		fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

struct taking {
	FILE *out;
	Dwfl *dwfl;
	pid_t pid;
	unsigned frames;             /* of the thread being unwound */
	size_t threads_unwound;
	size_t threads_with_frames;
	char first_error[256];       /* the first thread's that gave no frame */
};

static void put_thread(struct taking *k, pid_t tid)
{
	char path[96], comm[64], stat[512], wchan[64], state = '?';
	pid_t ppid;
	snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)k->pid, (int)tid);
	read_proc_line(path, comm, sizeof comm);
	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)k->pid, (int)tid);
	read_proc_line(path, stat, sizeof stat);
	parse_stat(stat, &state, &ppid);
	snprintf(path, sizeof path, "/proc/%d/task/%d/wchan", (int)k->pid, (int)tid);
	read_proc_line(path, wchan, sizeof wchan);
	fprintf(k->out, "thread\t%d", (int)tid);
	put_field(k->out, comm);
	fprintf(k->out, "\t%c", state);
	put_field(k->out, strcmp(wchan, "0") ? wchan : "");
	fputc('\n', k->out);
}

static void put_frame(struct taking *k, Dwarf_Addr pc, bool activation)
{
	/* a return address points after the call: look up the call */
	Dwarf_Addr at = activation ? pc : pc - 1;
	Dwfl_Module *mod = dwfl_addrmodule(k->dwfl, at);
	const char *module = NULL, *function = NULL, *file = NULL;
	Dwarf_Addr start = 0;
	GElf_Off function_offset = 0;
	int line = 0;
	if (mod) {
		const char *name = dwfl_module_info(mod, NULL, &start, NULL, NULL, NULL, NULL, NULL);
		const char *base = name ? strrchr(name, '/') : NULL;
		module = base ? base + 1 : name;
		GElf_Sym sym;
		function = dwfl_module_addrinfo(mod, at, &function_offset, &sym, NULL, NULL, NULL);
		if (function)
			function_offset += at == pc ? 0 : 1; /* from the function's start to pc */
		Dwfl_Line *l = dwfl_module_getsrc(mod, at);
		if (l)
			file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);
	}
	fprintf(k->out, "frame\t0x%" PRIx64, (uint64_t)pc);
	put_field(k->out, module);
	if (module)
		fprintf(k->out, "\t0x%" PRIx64, (uint64_t)(pc - start));
	else
		fputs("\t-", k->out);
	put_field(k->out, function);
	if (function)
		fprintf(k->out, "\t0x%" PRIx64, (uint64_t)function_offset);
	else
		fputs("\t-", k->out);
	put_field(k->out, file);
	if (file && line > 0)
		fprintf(k->out, "\t%d\n", line);
	else
		fputs("\t-\n", k->out);
}

static int on_frame(Dwfl_Frame *frame, void *arg)
{
	struct taking *k = arg;
	Dwarf_Addr pc;
	bool activation;
	if (!dwfl_frame_pc(frame, &pc, &activation))
		return DWARF_CB_ABORT;
	put_frame(k, pc, activation);
	return ++k->frames < MAX_FRAMES ? DWARF_CB_OK : DWARF_CB_ABORT;
}

static int on_thread(Dwfl_Thread *thread, void *arg)
{
	struct taking *k = arg;
	put_thread(k, dwfl_thread_tid(thread));
	k->frames = 0;
	/* an error at the end of a stack is how some stacks end: keep what
	 * came; an error before the first frame is a thread not unwound
	 * (elfutils attaches to each thread here: EPERM on a process that
	 * made itself non-dumpable, say) */
	if (dwfl_thread_getframes(thread, on_frame, k) != 0 && !k->frames && !k->first_error[0])
		snprintf(k->first_error, sizeof k->first_error, "%s", dwfl_errmsg(-1));
	k->threads_unwound++;
	k->threads_with_frames += k->frames != 0;
	return DWARF_CB_OK;
}

/* The threads from /proc, without stacks. */
static void put_threads_from_proc(struct taking *k)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)k->pid);
	DIR *d = opendir(path);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);
		if (!*end && tid > 0)
			put_thread(k, (pid_t)tid);
	}
	if (d)
		closedir(d);
}

/* What limits ptrace here, after err: Yama's scope when it is not 0, and
 * the capability a non-dumpable process needs. */
static void add_ptrace_hint(char *err, size_t errlen)
{
	char scope[16];
	size_t n = strlen(err);
	read_proc_line("/proc/sys/kernel/yama/ptrace_scope", scope, sizeof scope);
	if (scope[0] && strcmp(scope, "0"))
		snprintf(err + n, errlen - n, " (/proc/sys/kernel/yama/ptrace_scope is %s%s)", scope,
		         !strcmp(scope, "3") ? ": ptrace is disabled for everyone" :
		         !strcmp(scope, "2") ? ": only root may attach" : "");
	else
		snprintf(err + n, errlen - n,
		         " (attaching needs the same user and, to a process that made itself non-dumpable, "
		         "CAP_SYS_PTRACE)");
}

/* Why attaching failed, with what the user can do about it. */
static void attach_error(pid_t pid, int rc, char *err, size_t errlen)
{
	int e = rc > 0 ? rc : errno;
	if (rc < 0 && dwfl_errno())
		snprintf(err, errlen, "cannot attach to pid %d to read its stacks: %s", (int)pid, dwfl_errmsg(-1));
	else
		snprintf(err, errlen, "cannot attach to pid %d to read its stacks: %s", (int)pid, strerror(e));
	add_ptrace_hint(err, errlen);
}

/* Write the snapshot to f: 0 with stacks, -1 without (err says why). */
static int take_into(FILE *f, pid_t pid, enum snapshot_reason reason, uint64_t limit_ns, char *err, size_t errlen)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(f, "%s\t%d\npid\t%d\nreason\t%s\nlimit_ns\t%" PRIu64 "\ntaken_realtime_ns\t%" PRIu64 "\n",
	        SNAPSHOT_MAGIC, SNAPSHOT_VERSION, (int)pid,
	        reason == SNAPSHOT_FINALIZATION ? "finalization" : "timeout", limit_ns,
	        (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);

	static char *debuginfo_path;
	static const Dwfl_Callbacks callbacks = {
		.find_elf = dwfl_linux_proc_find_elf,
		.find_debuginfo = dwfl_standard_find_debuginfo,
		.debuginfo_path = &debuginfo_path,
	};
	struct taking k = { .out = f, .pid = pid };
	int rc = -1;
	k.dwfl = dwfl_begin(&callbacks);
	if (!k.dwfl) {
		snprintf(err, errlen, "cannot read the stacks of pid %d: %s", (int)pid, dwfl_errmsg(-1));
		goto no_stacks;
	}
	dwfl_report_begin(k.dwfl);
	int r = dwfl_linux_proc_report(k.dwfl, pid);
	dwfl_report_end(k.dwfl, NULL, NULL);
	if (r != 0) {
		snprintf(err, errlen, "cannot read the modules of pid %d: %s", (int)pid,
		         r > 0 ? strerror(r) : dwfl_errmsg(-1));
		goto no_stacks;
	}
	errno = 0;
	r = dwfl_linux_proc_attach(k.dwfl, pid, false);
	if (r != 0) {
		attach_error(pid, r, err, errlen);
		goto no_stacks;
	}
	if (dwfl_getthreads(k.dwfl, on_thread, &k) != 0 && !k.threads_unwound) {
		attach_error(pid, -1, err, errlen);
		goto no_stacks;
	}
	if (!k.threads_with_frames) {
		/* the threads are listed already: only the reason is left to say */
		snprintf(err, errlen, "cannot read the stacks of pid %d: %s", (int)pid,
		         k.first_error[0] ? k.first_error : "no thread could be unwound");
		add_ptrace_hint(err, errlen);
		fputs("error", f);
		put_field(f, err);
		fputc('\n', f);
		goto done;
	}
	rc = 0;
	goto done;
no_stacks:
	fputs("error", f);
	put_field(f, err);
	fputc('\n', f);
	put_threads_from_proc(&k);
done:
	if (k.dwfl)
		dwfl_end(k.dwfl); /* detaches */
	fputs("end\n", f);
	return rc;
}

int hang_snapshot_take(pid_t pid, const char *trace_path, enum snapshot_reason reason, uint64_t limit_ns, char *err,
                       size_t errlen)
{
	char *path = snapshot_path_of(trace_path), *tmp = NULL;
	if (!path || asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		free(path);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* whole or not at all: a snapshot cut short would read as complete */
	int fd = mkstemp(tmp);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		free(path);
		free(tmp);
		return -1;
	}
	fchmod(fd, 0644);
	int rc = take_into(f, pid, reason, limit_ns, err, errlen);
	bool written = !ferror(f);
	if (fclose(f) != 0 || !written || rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
		unlink(tmp);
		rc = -1;
	}
	free(path);
	free(tmp);
	return rc;
}

size_t hang_snapshot_traces(char *const *paths, size_t n, pid_t root, enum snapshot_reason reason, uint64_t limit_ns,
                            bool say)
{
	size_t tree_n = 0, taken = 0;
	pid_t *tree = descendants(root, &tree_n);
	for (size_t i = 0; i < n; i++) {
		struct gtr_file_header h;
		if (trace_read_header(paths[i], &h) != 0 || (h.flags & GTR_FLAG_CLOSED) || h.pid <= 0)
			continue;
		bool ours = false;
		for (size_t k = 0; tree && k < tree_n && !ours; k++)
			ours = tree[k] == (pid_t)h.pid;
		if (!ours)
			continue;
		char err[512] = "";
		char *snap = snapshot_path_of(paths[i]);
		if (hang_snapshot_take((pid_t)h.pid, paths[i], reason, limit_ns, err, sizeof err) == 0) {
			if (say)
				fprintf(stderr, "giltrace: snapshot of pid %d's threads written to %s\n", (int)h.pid, snap);
			taken++;
		} else if (say) {
			fprintf(stderr, "giltrace: pid %d: %s\n", (int)h.pid, err);
		}
		free(snap);
	}
	free(tree);
	return taken;
}
