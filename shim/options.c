/*
 * options.c: GILTRACE_OPTIONS, in the sanitizer style
 * ("output=/tmp/traces/%p.gtr:mode=ring:ring_size=8:check=0").
 *
 * Parsed once, when a process activates (so a non-Python process never
 * prints anything).  A bad key or value never stops the traced program: it
 * prints one warning naming the valid choices and keeps the default.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

/* Parsed options; valid once shim_options_parse() ran (at activation). */
struct shim_options shim_options;

#define DEFAULT_OUTPUT "giltrace.%p.gtr"
#define DEFAULT_RING_MIB 4u
#define MAX_RING_MIB 4096u
#define DEFAULT_CHECK_TIMEOUT 10u

static void warn(const char *key, const char *value, const char *valid)
{
	const char *parts[] = { "GILTRACE_OPTIONS: bad ", key, " '", value, "' (valid: ", valid,
		                "); using the default" };
	shim_say("warning", parts, 7);
}

static bool parse_unsigned(const char *s, unsigned *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return false;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || v > 0xffffffffUL)
		return false;
	*out = (unsigned)v;
	return true;
}

_Static_assert(GTR_STACK_MAX_FRAMES == 64, "the stack_depth warning names the maximum");

/* "suspect-capi,free" into enum stack_events bits; "none" is 0. */
static bool parse_stack_events(const char *value, unsigned *out)
{
	static const struct {
		const char *name;
		unsigned bits;
	} names[] = {
		{ "none", 0 },
		{ "suspect-capi", STACKS_SUSPECT_CAPI },
		{ "all-capi", STACKS_ALL_CAPI | STACKS_SUSPECT_CAPI },
		{ "free", STACKS_FREE },
		{ "finalize", STACKS_FINALIZE },
		{ "exit", STACKS_EXIT },
		{ "all", STACKS_DEFAULT | STACKS_ALL_CAPI },
	};
	unsigned bits = 0;
	const char *p = value;
	do {
		size_t len = strcspn(p, ",");
		size_t i = 0;
		while (i < sizeof names / sizeof names[0] &&
		       !(strlen(names[i].name) == len && strncmp(names[i].name, p, len) == 0))
			i++;
		if (i == sizeof names / sizeof names[0])
			return false;
		bits |= names[i].bits;
		p += len;
	} while (*p++ == ',');
	*out = bits;
	return true;
}

/* "1s", "200ms", "500us", "1000ns"; a bare number is seconds (sleep(1)
 * of bpo-39877's slow_exit.patch).  At most an hour. */
static bool parse_duration(const char *s, size_t len, uint64_t *ns)
{
	static const struct {
		const char *unit;
		uint64_t ns;
	} units[] = { { "", 1000000000u }, { "s", 1000000000u }, { "ms", 1000000u }, { "us", 1000u }, { "ns", 1u } };
	uint64_t v = 0;
	size_t i = 0;
	if (!len || s[0] < '0' || s[0] > '9')
		return false;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		if ((v = v * 10 + (uint64_t)(s[i] - '0')) > 3600000000000u)
			return false;
	for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
		if (strlen(units[u].unit) == len - i && strncmp(units[u].unit, s + i, len - i) == 0) {
			*ns = v * units[u].ns;
			return *ns <= 3600000000000u;
		}
	return false;
}

/* A decimal number of len characters, at most max. */
static bool parse_u64_n(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!len)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (max - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

#define PROVOKE_DEFAULT_DELAY_NS 1000000000u /* slow_exit.patch's sleep(1) */
#define PROVOKE_DEFAULT_JITTER_US 100u
#define PROVOKE_MAX_JITTER_US 1000000u

/* provoke=exit-delay=1s,exit-delay-after-free=200ms,poison,jitter=50,seed=7
 * (provoke.c): a comma list; all or nothing. */
static bool parse_provoke(const char *value, struct shim_options *o)
{
	struct shim_options v = *o;
	bool seed_given = false;
	v.provoke = 0;
	if (strcmp(value, "none") == 0) {
		*o = v;
		return true;
	}
	const char *p = value;
	do {
		size_t len = strcspn(p, ",");
		size_t name_len = strcspn(p, "=,");
		const char *arg = name_len < len ? p + name_len + 1 : NULL;
		size_t arg_len = arg ? len - name_len - 1 : 0;
#define IS(name) (name_len == strlen(name) && strncmp(p, name, name_len) == 0)
		if (IS("exit-delay")) {
			v.provoke |= GTR_PROVOKE_EXIT_DELAY;
			v.provoke_exit_delay_ns = PROVOKE_DEFAULT_DELAY_NS;
			if (arg && !parse_duration(arg, arg_len, &v.provoke_exit_delay_ns))
				return false;
		} else if (IS("exit-delay-after-free")) {
			v.provoke |= GTR_PROVOKE_EXIT_DELAY_AFTER_FREE;
			v.provoke_after_free_delay_ns = PROVOKE_DEFAULT_DELAY_NS;
			if (arg && !parse_duration(arg, arg_len, &v.provoke_after_free_delay_ns))
				return false;
		} else if (IS("poison") && !arg) {
			v.provoke |= GTR_PROVOKE_POISON;
		} else if (IS("jitter")) {
			uint64_t us = PROVOKE_DEFAULT_JITTER_US;
			if (arg && arg_len > 2 && strncmp(arg + arg_len - 2, "us", 2) == 0)
				arg_len -= 2;
			if (arg && !parse_u64_n(arg, arg_len, PROVOKE_MAX_JITTER_US, &us))
				return false;
			v.provoke |= GTR_PROVOKE_JITTER;
			v.provoke_jitter_us = (unsigned)us;
		} else if (IS("seed") && arg) {
			if (!parse_u64_n(arg, arg_len, UINT64_MAX, &v.provoke_jitter_seed))
				return false;
			seed_given = true;
		} else {
			return false;
		}
#undef IS
		p += len;
	} while (*p++ == ',');
	if (seed_given && !(v.provoke & GTR_PROVOKE_JITTER))
		return false;
	*o = v;
	if ((o->provoke & GTR_PROVOKE_JITTER) && !seed_given)
		provoke_choose_seed();
	return true;
}

static void set_option(const char *key, const char *value)
{
	if (strcmp(key, "output") == 0) {
		if (!*value || strlen(value) >= sizeof shim_options.output)
			warn("output", value, "a non-empty path, %p for the pid");
		else
			strcpy(shim_options.output, value);
	} else if (strcmp(key, "mode") == 0) {
		if (strcmp(value, "full") == 0)
			shim_options.mode = SHIM_MODE_FULL;
		else if (strcmp(value, "ring") == 0)
			shim_options.mode = SHIM_MODE_RING;
		else
			warn("mode", value, "full, ring");
	} else if (strcmp(key, "ring_size") == 0) {
		unsigned v;
		if (parse_unsigned(value, &v) && v >= 1 && v <= MAX_RING_MIB)
			shim_options.ring_size_mib = v;
		else
			warn("ring_size", value, "MiB per thread, 1 to 4096");
	} else if (strcmp(key, "verbose") == 0) {
		unsigned v;
		if (parse_unsigned(value, &v) && v <= 1)
			shim_options.verbose = v;
		else
			warn("verbose", value, "0, 1");
	} else if (strcmp(key, "check") == 0) {
		unsigned v;
		if (parse_unsigned(value, &v) && v <= 1)
			shim_options.check = v;
		else
			warn("check", value, "0, 1");
	} else if (strcmp(key, "check_severity") == 0) {
		if (strcmp(value, "error") == 0)
			shim_options.check_severity = CHECK_SEVERITY_ERROR;
		else if (strcmp(value, "note") == 0)
			shim_options.check_severity = CHECK_SEVERITY_NOTE;
		else
			warn("check_severity", value, "error, note");
	} else if (strcmp(key, "check_timeout") == 0) {
		unsigned v;
		if (parse_unsigned(value, &v) && v >= 1 && v <= 3600)
			shim_options.check_timeout = v;
		else
			warn("check_timeout", value, "seconds, 1 to 3600");
	} else if (strcmp(key, "exitcode") == 0) {
		unsigned v;
		if (parse_unsigned(value, &v) && v >= 1 && v <= 255)
			shim_options.exitcode = v;
		else
			warn("exitcode", value, "the exit status of a process with error findings, 1 to 255");
	} else if (strcmp(key, "log_path") == 0) {
		if (!*value || strlen(value) >= sizeof shim_options.log_path)
			warn("log_path", value, "a non-empty path, %p for the pid");
		else
			strcpy(shim_options.log_path, value);
	} else if (strcmp(key, "suppressions") == 0) {
		/* absolute now: the at-exit check runs wherever the process went */
		size_t cwd_len = 0;
		if (*value != '/' && getcwd(shim_options.suppressions, sizeof shim_options.suppressions))
			cwd_len = strlen(shim_options.suppressions);
		if (!*value || cwd_len + 1 + strlen(value) >= sizeof shim_options.suppressions) {
			shim_options.suppressions[0] = '\0';
			warn("suppressions", value, "the path of a suppressions file (giltrace check --help)");
		} else if (cwd_len) {
			shim_options.suppressions[cwd_len] = '/';
			strcpy(shim_options.suppressions + cwd_len + 1, value);
		} else {
			strcpy(shim_options.suppressions, value);
		}
	} else if (strcmp(key, "giltrace") == 0) {
		if (!*value || strlen(value) >= sizeof shim_options.giltrace)
			warn("giltrace", value, "the path of the giltrace program");
		else
			strcpy(shim_options.giltrace, value);
	} else if (strcmp(key, "stacks") == 0) {
		if (!parse_stack_events(value, &shim_options.stacks))
			warn("stacks", value, "none, or a comma list of suspect-capi, all-capi, free, finalize, exit, all");
	} else if (strcmp(key, "stack_depth") == 0) {
		unsigned v;
		if (parse_unsigned(value, &v) && v >= 1 && v <= GTR_STACK_MAX_FRAMES)
			shim_options.stack_depth = v;
		else
			warn("stack_depth", value, "frames per stack, 1 to 64");
	} else if (strcmp(key, "py_stack_depth") == 0) {
		unsigned v;
		if (parse_unsigned(value, &v) && v <= GTR_PY_STACK_MAX_FRAMES)
			shim_options.py_stack_depth = v;
		else
			warn("py_stack_depth", value, "Python frames per stack, 0 (none) to 64");
	} else if (strcmp(key, "provoke") == 0) {
		if (!parse_provoke(value, &shim_options))
			warn("provoke", value,
			     "none, or a comma list of exit-delay[=DURATION], exit-delay-after-free[=DURATION], poison, "
			     "jitter[=MICROSECONDS][,seed=N]");
	} else {
		const char *parts[] = { "GILTRACE_OPTIONS: unknown option '", key,
			                "' (valid: output, mode, ring_size, verbose, check, check_severity, check_timeout, exitcode, suppressions, log_path, giltrace, stacks, stack_depth, py_stack_depth, provoke)" };
		shim_say("warning", parts, 3);
	}
}

void shim_options_parse(const char *text)
{
	char buf[GTR_OPTIONS_MAX];
	strcpy(shim_options.output, DEFAULT_OUTPUT);
	shim_options.mode = SHIM_MODE_FULL;
	shim_options.ring_size_mib = DEFAULT_RING_MIB;
	shim_options.verbose = 0;
	shim_options.check = 1;
	shim_options.check_severity = CHECK_SEVERITY_ERROR;
	shim_options.check_timeout = DEFAULT_CHECK_TIMEOUT;
	shim_options.exitcode = 0;
	shim_options.log_path[0] = '\0';
	shim_options.giltrace[0] = '\0';
	shim_options.suppressions[0] = '\0';
	shim_options.stacks = STACKS_DEFAULT;
	shim_options.stack_depth = 32;
	shim_options.py_stack_depth = 16;
	shim_options.provoke = 0;
	if (!text || !*text)
		return;
	if (strlen(text) >= sizeof buf) {
		const char *parts[] = { "GILTRACE_OPTIONS is too long; using the defaults" };
		shim_say("warning", parts, 1);
		return;
	}
	strcpy(buf, text);
	char *save = NULL;
	for (char *item = strtok_r(buf, ":", &save); item; item = strtok_r(NULL, ":", &save)) {
		char *eq = strchr(item, '=');
		if (!eq) {
			const char *parts[] = { "GILTRACE_OPTIONS: '", item, "' is not key=value" };
			shim_say("warning", parts, 3);
			continue;
		}
		*eq = '\0';
		set_option(item, eq + 1);
	}
}

bool shim_expand_template(char *out, size_t size, const char *tmpl, pid_t pid)
{
	char digits[24];
	shim_format_u64(digits, (uint64_t)pid);
	size_t n = 0;
	bool had_pid = false;
	for (const char *s = tmpl; *s && n + 1 < size; s++) {
		if (s[0] == '%' && (s[1] == 'p' || s[1] == '%')) {
			const char *piece = s[1] == 'p' ? digits : "%";
			had_pid |= s[1] == 'p';
			for (; *piece && n + 1 < size; piece++)
				out[n++] = *piece;
			s++;
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
	return had_pid;
}

void shim_expand_log_path(char *out, size_t size)
{
	pid_t pid = getpid();
	if (shim_expand_template(out, size, shim_options.log_path, pid))
		return;
	size_t n = strlen(out);
	if (n + 1 < size)
		out[n++] = '.';
	shim_format_u64(out + n, (uint64_t)pid); /* room: the caller's size */
}
