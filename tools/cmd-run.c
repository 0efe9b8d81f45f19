/*
 * cmd-run.c: `giltrace run [-o PATH] [--mode full|ring] -- CMD...`
 *
 * Runs CMD with libgiltrace.so preloaded, passes its exit status through,
 * and says where the traces went, then prints their findings on stderr
 * (with --check, error findings make the exit status 1).  Every python process of the run writes
 * its trace into a private directory next to PATH; afterwards the first
 * python (the command itself, else the earliest started) gets PATH and the
 * others PATH with their pid before the extension (trace.4242.gtr).  A
 * PATH containing %p names every trace by its pid instead.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builtin.h"
#include "trace.h"
#include "usage.h"

static const char usage_text[] =
        "usage: giltrace run [-o PATH] [--mode full|ring] [--ring-size MIB] [--check] [--verbose] -- CMD [ARGS...]\n\n"
        "  -o, --output PATH   trace of the first python process (default giltrace.gtr);\n"
        "                      other python processes get PATH with their pid added;\n"
        "                      %p in PATH names every trace by its pid\n"
        "  --mode full|ring    full: keep every event (default); ring: keep the last\n"
        "                      --ring-size MiB per thread (default 4)\n"
        "  --check             exit with status 1 if a finding of severity error\n"
        "                      appeared (findings are printed on stderr either way)\n"
        "  --verbose           the shim says when it starts and stops tracing\n\n"
        "GILTRACE_OPTIONS in the environment is passed on (e.g. stacks=all,\n"
        "stack_depth=48; see README.md); run sets output, mode, ring_size,\n"
        "verbose and check itself.\n\n"
        "exit status: CMD's own (128+N if a signal N killed it); with --check, 1\n"
        "when a trace has error findings; 2 usage error\n";

#define SHIM_NAME "libgiltrace.so"

/* libgiltrace.so: $GILTRACE_SHIM, next to this executable, or in
 * ../lib/giltrace relative to it (an installed layout). */
static int find_shim(char out[PATH_MAX])
{
	const char *env = getenv("GILTRACE_SHIM");
	if (env && *env) {
		if (!realpath(env, out))
			return error("GILTRACE_SHIM='%s' does not exist", env);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return error("cannot find my own executable (/proc/self/exe)");
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	*slash = '\0';
	const char *candidates[] = { "%s/" SHIM_NAME, "%s/../lib/giltrace/" SHIM_NAME };
	for (size_t i = 0; i < 2; i++) {
		char path[PATH_MAX + 64];
		snprintf(path, sizeof path, candidates[i], exe);
		if (access(path, R_OK) == 0 && realpath(path, out))
			return 0;
	}
	return error("cannot find %s next to %s; set GILTRACE_SHIM to its path", SHIM_NAME, exe);
}

static void split_dir(const char *path, char *dir, size_t size)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, size, ".");
	else if (slash == path)
		snprintf(dir, size, "/");
	else
		snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

/* PATH with %p replaced, or with ".<pid>" before the extension. */
static void final_name(char *out, size_t size, const char *tmpl, int pid, bool first)
{
	if (strstr(tmpl, "%p")) {
		size_t n = 0;
		for (const char *s = tmpl; *s && n + 16 < size; s++) {
			if (s[0] == '%' && s[1] == 'p') {
				n += (size_t)snprintf(out + n, size - n, "%d", pid);
				s++;
			} else {
				out[n++] = *s;
			}
		}
		out[n] = '\0';
		return;
	}
	if (first) {
		snprintf(out, size, "%s", tmpl);
		return;
	}
	const char *slash = strrchr(tmpl, '/');
	const char *dot = strrchr(slash ? slash : tmpl, '.');
	if (!dot || dot == (slash ? slash + 1 : tmpl))
		snprintf(out, size, "%s.%d", tmpl, pid);
	else
		snprintf(out, size, "%.*s.%d%s", (int)(dot - tmpl), tmpl, pid, dot);
}

struct found_trace {
	char path[PATH_MAX];
	struct gtr_file_header header;
};

static size_t collect_traces(const char *dir, struct found_trace **out)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	*out = NULL;
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".gtr"))
			continue;
		struct found_trace *grown = realloc(*out, (n + 1) * sizeof *grown);
		if (!grown)
			break;
		*out = grown;
		int len_path = snprintf(grown[n].path, sizeof grown[n].path, "%s/%s", dir, de->d_name);
		if (len_path < 0 || (size_t)len_path >= sizeof grown[n].path)
			continue;
		if (trace_read_header(grown[n].path, &grown[n].header) != 0)
			memset(&grown[n].header, 0, sizeof grown[n].header);
		n++;
	}
	closedir(d);
	return n;
}

static int run_child(char **cmd, const char *shim, const char *options)
{
	const char *old = getenv("LD_PRELOAD");
	char *preload = NULL;
	if (old && *old) {
		size_t len = strlen(shim) + strlen(old) + 2;
		preload = malloc(len);
		if (preload)
			snprintf(preload, len, "%s:%s", shim, old);
	}
	pid_t pid = fork();
	if (pid < 0)
		die("cannot fork: %s", strerror(errno));
	if (pid == 0) {
		setenv("LD_PRELOAD", preload ? preload : shim, 1);
		setenv("GILTRACE_OPTIONS", options, 1);
		execvp(cmd[0], cmd);
		fprintf(stderr, "giltrace: cannot run '%s': %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	free(preload);
	return pid;
}

int cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "mode", required_argument, NULL, 'm' },
		{ "ring-size", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "check", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *output = "giltrace.gtr", *mode = "full";
	unsigned long ring_size = 4;
	bool verbose = false, check = false;
	int c;
	/* "+": stop at the first non-option, CMD's own options are CMD's */
	while ((c = getopt_long(argc, argv, "+o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "full") && strcmp(optarg, "ring"))
				die("--mode must be full or ring, not '%s'", optarg);
			mode = optarg;
			break;
		case 'r': {
			char *end;
			ring_size = strtoul(optarg, &end, 10);
			if (*end || ring_size < 1 || ring_size > 4096)
				die("--ring-size must be a number of MiB from 1 to 4096, not '%s'", optarg);
			break;
		}
		case 'v':
			verbose = true;
			break;
		case 'c':
			check = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_CLEAN;
		default:
			fputs(usage_text, stderr);
			return EXIT_UNUSABLE;
		}
	}
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return EXIT_UNUSABLE;
	}
	if (!*output || strchr(output, ':'))
		die("-o '%s': the trace path must be non-empty and contain no ':'", output);

	char shim[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX + 32];
	if (find_shim(shim) != 0)
		return EXIT_UNUSABLE;
	split_dir(output, dir, sizeof dir);
	snprintf(tmp, sizeof tmp, "%s/.giltrace-run.XXXXXX", dir);
	if (!mkdtemp(tmp))
		die("cannot create a directory for traces next to '%s': %s", output, strerror(errno));
	/* The user's GILTRACE_OPTIONS (stacks=, stack_depth=) come first: the
	 * shim takes the last value of a key, so run's own keys win. */
	const char *user = getenv("GILTRACE_OPTIONS");
	char options[GTR_OPTIONS_MAX];
	if (snprintf(options, sizeof options, "%s%soutput=%s/%%p.gtr:mode=%s:ring_size=%lu:verbose=%d:check=0",
	             user ? user : "", user && *user ? ":" : "", tmp, mode, ring_size, verbose) >= (int)sizeof options) {
		rmdir(tmp);
		die("GILTRACE_OPTIONS and the trace folder '%s' make options longer than the shim reads (%d bytes)",
		    tmp, GTR_OPTIONS_MAX - 1);
	}

	/* Like time(1): the terminal's SIGINT/SIGQUIT reach the child; we
	 * stay to collect the traces and pass its status on. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	pid_t pid = run_child(argv + optind, shim, options);
	int wstatus = 0;
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	int status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	if (WIFSIGNALED(wstatus))
		fprintf(stderr, "giltrace: '%s' was killed by signal %d\n", argv[optind], WTERMSIG(wstatus));

	struct found_trace *traces;
	size_t n = collect_traces(tmp, &traces);
	size_t first = 0;
	for (size_t i = 0; i < n; i++) {
		const struct gtr_file_header *h = &traces[i].header, *f = &traces[first].header;
		if (h->pid == pid || (f->pid != pid && h->start_realtime_ns < f->start_realtime_ns))
			first = i;
	}
	char **written = calloc(n ? n : 1, sizeof *written);
	size_t written_count = 0;
	for (size_t i = 0; i < n; i++) {
		char dest[PATH_MAX + 32];
		final_name(dest, sizeof dest, output, traces[i].header.pid, i == first);
		if (rename(traces[i].path, dest) != 0) {
			error("cannot move trace '%s' to '%s': %s", traces[i].path, dest, strerror(errno));
			continue;
		}
		if (written && (written[written_count] = strdup(dest)))
			written_count++;
		fprintf(stderr, "giltrace: trace of pid %d (python %.*s) written to %s\n", traces[i].header.pid,
		        (int)strcspn(traces[i].header.py_version, " "), traces[i].header.py_version, dest);
	}
	if (n == 0)
		fprintf(stderr, "giltrace: no python process ran under '%s'; no trace written\n", argv[optind]);
	if (rmdir(tmp) != 0)
		fprintf(stderr, "giltrace: traces of processes still running stay in %s\n", tmp);
	free(traces);
	/* the findings, like the shim prints them at exit when run without us */
	int findings = written_count ? check_paths(written, written_count, stderr, false, true) : EXIT_CLEAN;
	for (size_t i = 0; i < written_count; i++)
		free(written[i]);
	free(written);
	return check && findings == EXIT_FINDINGS ? EXIT_FINDINGS : status;
}
