// Over 400 lines because it is a test program: every observation the tests need is a subcommand of one static binary.
/*
 * hako-probe: the test and demo payload that runs inside hako containers.
 *
 * The test rootfs has no shell and no coreutils, so every observation the
 * tests need (identity, namespaces, capabilities, limits, tty, files, raw
 * syscalls for seccomp) is a subcommand of this one static program.
 *
 * Build: gcc -std=c11 -static -Os -s -Wall -Wextra -Werror -o hako-probe probe.c
 * Only libc is used; it also builds with aarch64-linux-gnu-gcc and
 * arm-linux-gnueabihf-gcc. The interface is described in README.md.
 *
 * Results go to stdout, diagnostics to stderr with errno text.
 * Exit status: 0 success, 1 an operation failed, 2 usage error.
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64 /* 64-bit rlim_t and off_t on 32-bit ARM too */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Syscalls some architectures (or older headers) lack. -1 = not available
 * here: `syscall` then reports ENOSYS without calling anything. */
#ifndef SYS_mknod
#define SYS_mknod -1
#endif
#ifndef SYS_chown
#define SYS_chown -1
#endif
#ifndef SYS_chown32
#define SYS_chown32 -1
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup -1
#endif
#ifndef SYS_fsopen
#define SYS_fsopen -1
#endif
#ifndef SYS_open_tree
#define SYS_open_tree -1
#endif

#define COUNT(a) (sizeof(a) / sizeof *(a))

static int g_argc;
static char **g_argv;

/* ------------------------------------------------------------------ */
/* errors and argument parsing                                         */

static int fail(const char *what, const char *arg)
{
	int e = errno;
	fprintf(stderr, "hako-probe: %s%s%s: %s\n", what, arg ? " " : "",
		arg ? arg : "", strerror(e));
	return 1;
}

static void usage_exit(const char *msg, const char *arg)
{
	fprintf(stderr, "hako-probe: %s%s%s (try: hako-probe help)\n", msg,
		arg ? ": " : "", arg ? arg : "");
	exit(2);
}

/* Whole-string integer; base 0 accepts 0x.. hex. Bad input is a usage error. */
static long long num(const char *s, int base, const char *what)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, base);
	if (errno || end == s || *end)
		usage_exit(what, s);
	return v;
}

/* ------------------------------------------------------------------ */
/* minimal JSON writer (stdout)                                        */
/*
 * A stack of "first element" flags places the commas, so callers only say
 * what to emit. Strings are escaped per RFC 8259, and bytes that are not
 * valid UTF-8 (possible in env or mount paths) become U+FFFD, so the output
 * always parses.
 */

static int j_first[16];
static int j_depth;
static int j_after_key;

static void j_sep(void)
{
	if (j_after_key)
		j_after_key = 0;
	else if (j_depth > 0 && !j_first[j_depth])
		putchar(',');
	j_first[j_depth] = 0;
}

/* Length of the valid UTF-8 sequence at s, 0 if invalid. The second byte's
 * range excludes overlongs (E0, F0), surrogates (ED) and > U+10FFFF (F4). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
	unsigned lo = s[0] == 0xe0 ? 0xa0 : s[0] == 0xf0 ? 0x90 : 0x80;
	unsigned hi = s[0] == 0xed ? 0x9f : s[0] == 0xf4 ? 0x8f : 0xbf;
	if (s[0] < 0xc2 || s[0] > 0xf4 || n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

static void j_strn(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len;
	j_sep();
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else if (c < 0x80)
			putchar(c);
		else if ((len = utf8_len(s + i, n - i)) != 0)
			fwrite(s + i, 1, len, stdout), i += len - 1;
		else
			fputs("\\ufffd", stdout);
	}
	putchar('"');
}

static void j_open(char c) { j_sep(); putchar(c); j_first[++j_depth] = 1; }
static void j_close(char c) { j_depth--; putchar(c); }
static void j_null(void) { j_sep(); fputs("null", stdout); }
static void j_int(long long v) { j_sep(); printf("%lld", v); }
static void j_bool(int b) { j_sep(); fputs(b ? "true" : "false", stdout); }

static void j_str(const char *s)
{
	if (s)
		j_strn(s, strlen(s));
	else
		j_null();
}

static void j_key(const char *k)
{
	j_strn(k, strlen(k));
	putchar(':');
	j_after_key = 1; /* the value that follows takes no comma */
}

static void k_str(const char *k, const char *v) { j_key(k); j_str(v); }
static void k_int(const char *k, long long v) { j_key(k); j_int(v); }
static void k_bool(const char *k, int v) { j_key(k); j_bool(v); }
static void k_null(const char *k) { j_key(k); j_null(); }
static void k_int_if(const char *k, int ok, long long v) { ok ? k_int(k, v) : k_null(k); }

/* ------------------------------------------------------------------ */
/* /proc helpers                                                       */

/* Read a whole file (procfs reports size 0, so read until EOF).
 * Returns a NUL-terminated malloc'd buffer, or NULL with errno set. */
static char *slurp(const char *path, size_t *lenp)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 0, len = 0;
	char *buf = NULL, *nb;
	ssize_t r = 0;
	do {
		len += (size_t)r;
		if (len + 1 >= cap) {
			cap = cap ? cap * 2 : 4096;
			if ((nb = realloc(buf, cap)) == NULL) {
				errno = ENOMEM;
				r = -1;
				break;
			}
			buf = nb;
		}
		while ((r = read(fd, buf + len, cap - len - 1)) < 0 && errno == EINTR)
			;
	} while (r > 0);
	int e = errno;
	close(fd);
	if (r < 0) {
		free(buf);
		errno = e;
		return NULL;
	}
	buf[len] = 0;
	if (lenp)
		*lenp = len;
	return buf;
}

/* Copy the value of a "Name:<ws>value" line of /proc/self/status. */
static const char *status_field(const char *buf, const char *name, char *out,
				size_t outsz)
{
	size_t n = strlen(name);
	for (const char *p = buf; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, name, n) != 0 || p[n] != ':')
			continue;
		p += n + 1;
		p += strspn(p, " \t");
		size_t len = strcspn(p, "\n");
		if (len >= outsz)
			len = outsz - 1;
		memcpy(out, p, len);
		out[len] = 0;
		return out;
	}
	return NULL;
}

static void k_status_str(const char *status, const char *key, const char *field)
{
	char v[4096];
	k_str(key, status ? status_field(status, field, v, sizeof v) : NULL);
}

static void k_status_int(const char *status, const char *key, const char *field)
{
	char v[64];
	int ok = status && status_field(status, field, v, sizeof v);
	k_int_if(key, ok, ok ? strtoll(v, NULL, 10) : 0);
}

/* File contents as a JSON string, or null if unreadable (e.g. no /proc). */
static void k_file(const char *key, const char *path)
{
	size_t len;
	char *s = slurp(path, &len);
	j_key(key);
	if (s)
		j_strn(s, len);
	else
		j_null();
	free(s);
}

/* File lines as a JSON array of strings, or null if unreadable. */
static void k_lines(const char *key, const char *path)
{
	char *s = slurp(path, NULL);
	j_key(key);
	if (!s) {
		j_null();
		return;
	}
	j_open('[');
	for (char *line = s; *line;) {
		size_t len = strcspn(line, "\n");
		if (len)
			j_strn(line, len);
		line += len + (line[len] == '\n');
	}
	j_close(']');
	free(s);
}

/* ------------------------------------------------------------------ */
/* hello, json                                                         */
/* Every command gets its operands as a NULL-terminated vector; the     */
/* dispatcher has already checked their count.                          */

static int cmd_hello(char **a)
{
	(void)a;
	char host[HOST_NAME_MAX + 1] = "?";
	if (gethostname(host, sizeof host) != 0)
		strcpy(host, "?");
	host[HOST_NAME_MAX] = 0;
	printf("Hello from a hako container!\n");
	printf("hostname=%s pid=%d uid=%d\n", host, (int)getpid(), (int)getuid());
	return 0;
}

static const char *sched_name(int policy)
{
	static const char *const names[] = {"SCHED_OTHER", "SCHED_FIFO",
		"SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE"};
	return policy >= 0 && policy < (int)COUNT(names) ? names[policy] : "unknown";
}

#define RL(x) {"RLIMIT_" #x, RLIMIT_##x}
static const struct {
	const char *name;
	int res;
} rlimits[] = {
	RL(AS), RL(CORE), RL(CPU), RL(DATA), RL(FSIZE), RL(LOCKS), RL(MEMLOCK),
	RL(MSGQUEUE), RL(NICE), RL(NOFILE), RL(NPROC), RL(RSS), RL(RTPRIO),
	RL(RTTIME), RL(SIGPENDING), RL(STACK),
};

static const char *const ns_types[] = {
	"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children",
	"time", "time_for_children", "user", "uts",
};

static void json_ids(void)
{
	k_int("pid", getpid());
	k_int("ppid", getppid());
	k_int("uid", getuid());
	k_int("euid", geteuid());
	k_int("gid", getgid());
	k_int("egid", getegid());
	int n = getgroups(0, NULL);
	gid_t *g = n > 0 ? calloc((size_t)n, sizeof *g) : NULL;
	if (g)
		n = getgroups(n, g);
	j_key("groups");
	j_open('[');
	for (int i = 0; g && i < n; i++)
		j_int(g[i]);
	j_close(']');
	free(g);

	char buf[PATH_MAX + 1];
	k_str("hostname", gethostname(buf, sizeof buf) == 0 ? buf : NULL);
	k_str("domainname", getdomainname(buf, sizeof buf) == 0 ? buf : NULL);
	/* getcwd fails (ENOENT) when the cwd lies outside the process's root. */
	k_str("cwd", getcwd(buf, sizeof buf));
}

static void json_env_args_ns(void)
{
	j_key("env");
	j_open('[');
	for (char **e = environ; e && *e; e++)
		j_str(*e);
	j_close(']');
	j_key("args");
	j_open('[');
	for (int i = 0; i < g_argc; i++)
		j_str(g_argv[i]);
	j_close(']');

	j_key("namespaces");
	j_open('{');
	for (size_t i = 0; i < COUNT(ns_types); i++) {
		char path[64], link[128], *ino = NULL;
		snprintf(path, sizeof path, "/proc/self/ns/%s", ns_types[i]);
		ssize_t r = readlink(path, link, sizeof link - 1);
		if (r > 0) {
			/* "net:[4026531840]" -> "4026531840", which is also st_ino */
			link[r] = 0;
			if ((ino = strchr(link, '[')) != NULL)
				ino[strcspn(ino, "]")] = 0, ino++;
		}
		k_str(ns_types[i], ino);
	}
	j_close('}');
}

static void json_security(const char *status)
{
	static const char *const caps[][2] = {{"inh", "CapInh"},
		{"prm", "CapPrm"}, {"eff", "CapEff"}, {"bnd", "CapBnd"},
		{"amb", "CapAmb"}};
	j_key("caps");
	j_open('{');
	for (size_t i = 0; i < COUNT(caps); i++)
		k_status_str(status, caps[i][0], caps[i][1]);
	j_close('}');

	int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	j_key("noNewPrivs");
	nnp >= 0 ? j_bool(nnp) : j_null();
	k_status_int(status, "seccomp", "Seccomp");
	k_status_int(status, "seccompFilters", "Seccomp_filters");
	/* Lets tests check that the runtime resets the signal mask and the
	 * dispositions it inherited (Node ignores SIGPIPE; SIG_IGN survives
	 * execve). */
	j_key("signals");
	j_open('{');
	k_status_str(status, "blocked", "SigBlk");
	k_status_str(status, "ignored", "SigIgn");
	k_status_str(status, "caught", "SigCgt");
	j_close('}');
	k_file("securityLabel", "/proc/self/attr/current"); /* AppArmor/SELinux */
}

static void json_sched(const char *status)
{
	k_status_str(status, "cpusAllowedList", "Cpus_allowed_list");
	j_key("sched");
	j_open('{');
	/* Raw syscalls: musl's wrappers are stubs (POSIX process vs Linux thread semantics). */
	int pol = (int)syscall(SYS_sched_getscheduler, 0);
	int base = pol & ~0x40000000; /* SCHED_RESET_ON_FORK is or-ed in */
	k_int("policy", pol < 0 ? -1 : base);
	k_str("policyName", pol < 0 ? NULL : sched_name(base));
	k_bool("resetOnFork", pol >= 0 && (pol & 0x40000000));
	struct sched_param sp;
	int ok = syscall(SYS_sched_getparam, 0, &sp) == 0;
	k_int_if("priority", ok, ok ? sp.sched_priority : 0);
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, 0); /* -1 is a valid nice value */
	k_int_if("nice", errno == 0, nice);
	j_close('}');

	/* Raw value plus its parts: class = value >> 13, level = low 13 bits. */
	long io = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0);
	k_int_if("ioprio", io >= 0, io);
	k_int_if("ioprioClass", io >= 0, io >> 13);
	k_int_if("ioprioLevel", io >= 0, io & 0x1fff);
	char *oom = slurp("/proc/self/oom_score_adj", NULL);
	k_int_if("oomScoreAdj", oom != NULL, oom ? strtol(oom, NULL, 10) : 0);
	free(oom);
	k_int("personality", personality(0xffffffff));
}

static void json_rlimits_fds(void)
{
	j_key("rlimits");
	j_open('{');
	for (size_t i = 0; i < COUNT(rlimits); i++) {
		struct rlimit rl;
		j_key(rlimits[i].name);
		if (getrlimit(rlimits[i].res, &rl) != 0) {
			j_null();
			continue;
		}
		j_open('{');
		k_int("soft", rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur);
		k_int("hard", rl.rlim_max == RLIM_INFINITY ? -1 : (long long)rl.rlim_max);
		j_close('}');
	}
	j_close('}');

	j_key("openFds");
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		j_null();
		return;
	}
	/* procfs lists fds in ascending order. Skip "." and "..", and the fd
	 * this listing itself uses. */
	int self = dirfd(d);
	struct dirent *de;
	j_open('[');
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && atoi(de->d_name) != self)
			j_int(atoi(de->d_name));
	j_close(']');
	/* What each fd is (a file's path, pipe:[N], socket:[N], anon_inode:[...]): leak tests match every type. */
	rewinddir(d);
	j_key("fdTargets");
	j_open('{');
	while ((de = readdir(d)) != NULL) {
		char link[64], target[PATH_MAX];
		if (de->d_name[0] == '.' || atoi(de->d_name) == self)
			continue;
		snprintf(link, sizeof link, "/proc/self/fd/%s", de->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		target[n < 0 ? 0 : n] = 0;
		k_str(de->d_name, target);
	}
	j_close('}');
	closedir(d);
}

static void json_tty(void)
{
	k_bool("stdinIsTty", isatty(0));
	k_bool("stdoutIsTty", isatty(1));
	k_str("ttyName", ttyname(0));
	int tfd = isatty(0) ? 0 : isatty(1) ? 1 : -1;
	struct winsize ws;
	j_key("winsize");
	if (tfd >= 0 && ioctl(tfd, TIOCGWINSZ, &ws) == 0) {
		j_open('{');
		k_int("rows", ws.ws_row);
		k_int("cols", ws.ws_col);
		j_close('}');
	} else {
		j_null();
	}
}

static int cmd_json(char **a)
{
	(void)a;
	char *status = slurp("/proc/self/status", NULL); /* NULL if no /proc */
	char um[16];

	j_open('{');
	json_ids();
	/* The Umask status line (Linux >= 4.7) reads it without changing it;
	 * otherwise set and restore it (we are single-threaded). */
	if (!status || !status_field(status, "Umask", um, sizeof um)) {
		mode_t m = umask(022);
		umask(m);
		snprintf(um, sizeof um, "%04o", (unsigned)m);
	}
	k_str("umask", um);
	json_env_args_ns();
	json_security(status);
	json_sched(status);
	json_rlimits_fds();
	k_lines("mountinfo", "/proc/self/mountinfo");
	k_file("uidMap", "/proc/self/uid_map");
	k_file("gidMap", "/proc/self/gid_map");
	k_file("cgroup", "/proc/self/cgroup");
	json_tty();
	j_close('}');
	putchar('\n');
	free(status);
	return 0;
}

/* ------------------------------------------------------------------ */
/* process control                                                     */

static int cmd_exit(char **a)
{
	long long n = num(a[0], 10, "exit status must be 0..255");
	if (n < 0 || n > 255)
		usage_exit("exit status must be 0..255", a[0]);
	exit((int)n);
}

static int cmd_kill_self(char **a)
{
	long long v = num(a[0], 10, "bad signal number");
	if (v < 1 || v >= NSIG)
		usage_exit("bad signal number", a[0]);
	int sig = (int)v;
	/* Undo an inherited SIG_IGN or blocked mask so the signal really acts.
	 * sigaction fails (EINVAL) for KILL/STOP, which are always default. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigaction(sig, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	fflush(stdout);
	if (raise(sig) != 0)
		return fail("kill-self: raise", a[0]);

	/* Still alive. A PID-namespace init (pid 1) never receives signals it
	 * sends itself while their handler is SIG_DFL. A real fault, though, is
	 * "forced" and kills even init, so for SEGV touch an inaccessible page. */
	if (sig == SIGSEGV) {
		volatile char *p = mmap(NULL, 4096, PROT_NONE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED)
			*p = 1;
	}
	switch (sig) {
	case SIGCHLD: case SIGCONT: case SIGURG: case SIGWINCH:
	case SIGSTOP: case SIGTSTP: case SIGTTIN: case SIGTTOU:
		return 0; /* default action is ignore, stop or continue */
	}
	fprintf(stderr, "hako-probe: kill-self: still alive after signal %d%s\n",
		sig, getpid() == 1 ? " (a PID-namespace init ignores default-action"
		" signals it sends itself)" : "");
	return 1;
}

static void exit_on_signal(int sig)
{
	_exit(128 + sig);
}

/*
 * As pid 1 of a PID namespace, the kernel drops every signal whose handler
 * is SIG_DFL (only SIGKILL/SIGSTOP from an ancestor namespace get through),
 * so `hako kill TERM` and Ctrl-C would be ignored. Behave like a shell's
 * child instead: exit with 128+signal on HUP, INT and TERM.
 */
static void pid1_exit_on_signals(void)
{
	static const int sigs[] = {SIGHUP, SIGINT, SIGTERM};
	struct sigaction sa;
	if (getpid() != 1)
		return;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = exit_on_signal;
	for (size_t i = 0; i < COUNT(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* Seconds as a double; "inf" (or >= 1e9) means forever, returned as -1. */
static double parse_seconds(const char *s)
{
	char *end;
	if (strcmp(s, "inf") == 0 || strcmp(s, "infinity") == 0)
		return -1;
	double d = strtod(s, &end);
	if (end == s || *end || !(d >= 0))
		usage_exit("bad duration (seconds, fractional ok, or inf)", s);
	return d >= 1e9 ? -1 : d;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmd_sleep(char **a)
{
	double d = parse_seconds(a[0]);
	pid1_exit_on_signals();
	if (d < 0)
		for (;;)
			pause();
	struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
	while (nanosleep(&ts, &ts) != 0)
		if (errno != EINTR)
			return fail("sleep", a[0]);
	return 0;
}

static int cmd_spin(char **a)
{
	double d = parse_seconds(a[0]);
	pid1_exit_on_signals();
	long long end = d < 0 ? -1 : now_ns() + (long long)(d * 1e9);
	volatile unsigned long sink = 0;
	for (;;) {
		for (int i = 0; i < 100000; i++) /* ~0.1 ms between clock reads */
			sink++;
		if (end >= 0 && now_ns() >= end)
			return 0;
	}
}

static int cmd_getpid_loop(char **a)
{
	long long n = num(a[0], 10, "bad count");
	if (n < 0)
		usage_exit("bad count", a[0]);
	long long t0 = now_ns();
	for (long long i = 0; i < n; i++)
		syscall(SYS_getpid); /* a real kernel entry each time */
	printf("{\"n\":%lld,\"ns\":%lld}\n", n, now_ns() - t0);
	return 0;
}

/*
 * exe-attack SECONDS: the CVE-2019-5736 attacker, as pid 1 of a container, for the
 * runtime's regression test. It spins on the next pids of its pid namespace and,
 * for every process whose /proc/PID/exe is not this probe (one entering the
 * container: `hako exec`), opens the exe for writing, and keeps an O_PATH fd of it
 * to reopen for writing through /proc/self/fd later (after the process has moved
 * on). A write puts back the byte already at offset 0, so a runtime that loses
 * still keeps its files intact. Lines on stdout:
 *   seen DEV:INO            an exe was reachable
 *   wrote HOW DEV:INO       an exe was written (direct, reopen)
 *   refused HOW DEV:INO E   opened but the write failed with errno E
 *   closed HOW E            the open for writing failed with errno E
 *   summary ATTEMPTS DENIED (denied: /proc/PID/exe refused, as for a non-dumpable process)
 * It stops after SECONDS or once /attack-stop exists.
 */
#define ATTACK_MAX 256
static struct { dev_t dev; ino_t ino; } a_seen[ATTACK_MAX];
static int a_nseen;
static char a_said[ATTACK_MAX][96];
static int a_nsaid;

static void attack_say(const char *line)
{
	for (int i = 0; i < a_nsaid; i++)
		if (strcmp(a_said[i], line) == 0)
			return;
	if (a_nsaid < ATTACK_MAX)
		snprintf(a_said[a_nsaid++], sizeof a_said[0], "%s", line);
	printf("%s\n", line);
	fflush(stdout);
}

static void attack_write(const char *path, const char *how)
{
	char line[96];
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(line, sizeof line, "closed %s %d", how, errno);
		attack_say(line);
		return;
	}
	struct stat st;
	unsigned char byte;
	if (fstat(fd, &st) == 0 && pread(fd, &byte, 1, 0) == 1) {
		if (pwrite(fd, &byte, 1, 0) == 1)
			snprintf(line, sizeof line, "wrote %s %llu:%llu", how, (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
		else
			snprintf(line, sizeof line, "refused %s %llu:%llu %d", how, (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, errno);
		attack_say(line);
	}
	close(fd);
}

static int cmd_exe_attack(char **a)
{
	double d = parse_seconds(a[0]);
	pid1_exit_on_signals();
	long long end = d < 0 ? -1 : now_ns() + (long long)(d * 1e9);
	struct stat self;
	if (stat("/proc/self/exe", &self) < 0)
		return fail("stat", "/proc/self/exe");
	int held[ATTACK_MAX], nheld = 0;
	long long attempts = 0, denied = 0;
	/* Pids up to `done` have finished entering (their exe is this probe) or are gone. */
	int done = getpid();
	char path[64], line[96];
	for (unsigned long iter = 0;; iter++) {
		if (iter % 2048 == 0) {
			if ((end >= 0 && now_ns() >= end) || access("/attack-stop", F_OK) == 0)
				break;
			/* Reopen what was held: the process behind it has had time to exec or exit. */
			for (int i = 0; i < nheld; i++) {
				snprintf(path, sizeof path, "/proc/self/fd/%d", held[i]);
				attack_write(path, "reopen");
				close(held[i]);
			}
			nheld = 0;
			DIR *dir = opendir("/proc");
			struct dirent *e;
			while (dir && (e = readdir(dir))) {
				int pid = atoi(e->d_name);
				struct stat st;
				snprintf(path, sizeof path, "/proc/%d/exe", pid);
				if (pid > done && stat(path, &st) == 0 && st.st_dev == self.st_dev && st.st_ino == self.st_ino)
					done = pid;
			}
			if (dir)
				closedir(dir);
		}
		/* The next pids: an entering process gets one of them. Watched until its exe is this probe. */
		for (int pid = done + 1; pid <= done + 3; pid++) {
			snprintf(path, sizeof path, "/proc/%d/exe", pid);
			int fd = open(path, O_PATH | O_CLOEXEC);
			if (fd < 0) {
				if (errno == EACCES || errno == EPERM)
					denied++;
				continue;
			}
			struct stat st;
			if (fstat(fd, &st) < 0 || (st.st_dev == self.st_dev && st.st_ino == self.st_ino)) {
				close(fd);
				if (pid > done)
					done = pid;
				continue;
			}
			attempts++;
			int known = 0;
			for (int i = 0; i < a_nseen; i++)
				known |= a_seen[i].dev == st.st_dev && a_seen[i].ino == st.st_ino;
			if (!known && a_nseen < ATTACK_MAX) {
				a_seen[a_nseen].dev = st.st_dev;
				a_seen[a_nseen++].ino = st.st_ino;
				snprintf(line, sizeof line, "seen %llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
				attack_say(line);
			}
			attack_write(path, "direct");
			if (nheld < ATTACK_MAX)
				held[nheld++] = fd;
			else
				close(fd);
		}
	}
	for (int i = 0; i < nheld; i++) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", held[i]);
		attack_write(path, "reopen");
	}
	printf("summary %lld %lld\n", attempts, denied);
	return 0;
}

static int cmd_env(char **a)
{
	const char *v = getenv(a[0]);
	if (!v) {
		fprintf(stderr, "hako-probe: env: %s is not set\n", a[0]);
		return 1;
	}
	puts(v);
	return 0;
}

static int cmd_echo(char **a)
{
	for (int i = 0; a[i]; i++)
		printf("%s%s", i ? " " : "", a[i]);
	putchar('\n');
	return 0;
}

/* ------------------------------------------------------------------ */
/* files                                                               */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* No PATH, or "-", copies stdin: tests use it for stdin plumbing and to
 * wait until stdin is closed. */
static int cmd_cat(char **a)
{
	static char buf[65536];
	static char *dash[] = {"-", NULL};
	int rc = 0;
	for (char **p = a[0] ? a : dash; *p; p++) {
		int fd = strcmp(*p, "-") == 0 ? 0 : open(*p, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = fail("cat", *p);
			continue;
		}
		for (;;) {
			ssize_t r = read(fd, buf, sizeof buf);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				rc = fail("cat: read", *p);
			else if (r > 0 && write_all(1, buf, (size_t)r) != 0)
				rc = fail("cat: write", "stdout");
			else if (r > 0)
				continue;
			break;
		}
		if (fd != 0)
			close(fd);
	}
	return rc;
}

static int not_dots(const struct dirent *d)
{
	return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

/* Byte order (not alphasort's strcoll), so output is locale-independent. */
static int by_name(const struct dirent **x, const struct dirent **y)
{
	return strcmp((*x)->d_name, (*y)->d_name);
}

static int cmd_ls(char **a)
{
	const char *path = a[0] ? a[0] : ".";
	struct dirent **list;
	int n = scandir(path, &list, not_dots, by_name);
	if (n < 0)
		return fail("ls", path);
	for (int i = 0; i < n; i++)
		puts(list[i]->d_name), free(list[i]);
	free(list);
	return 0;
}

static const char *file_type(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "dir";
	case S_IFCHR: return "char";
	case S_IFBLK: return "block";
	case S_IFIFO: return "fifo";
	case S_IFLNK: return "symlink";
	case S_IFSOCK: return "socket";
	default: return "unknown";
	}
}

static int cmd_stat(char **a)
{
	struct stat st;
	char mode[16], target[PATH_MAX];
	if (lstat(a[0], &st) != 0)
		return fail("stat", a[0]);
	snprintf(mode, sizeof mode, "%04o", (unsigned)(st.st_mode & 07777));
	j_open('{');
	k_str("path", a[0]);
	k_str("type", file_type(st.st_mode));
	k_str("mode", mode);
	k_int("uid", st.st_uid);
	k_int("gid", st.st_gid);
	k_int("rdevMajor", major(st.st_rdev));
	k_int("rdevMinor", minor(st.st_rdev));
	k_int("size", (long long)st.st_size);
	k_int("nlink", (long long)st.st_nlink);
	k_int("ino", (long long)st.st_ino);
	if (S_ISLNK(st.st_mode)) {
		ssize_t r = readlink(a[0], target, sizeof target - 1);
		k_str("target", r >= 0 ? (target[r] = 0, target) : NULL);
	}
	j_close('}');
	putchar('\n');
	return 0;
}

static int cmd_write(char **a)
{
	int fd = open(a[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail("write: open", a[0]);
	if (write_all(fd, a[1], strlen(a[1])) != 0) {
		int rc = fail("write", a[0]);
		close(fd);
		return rc;
	}
	if (close(fd) != 0) /* some filesystems report write errors only here */
		return fail("write: close", a[0]);
	return 0;
}

static int cmd_mkdir(char **a)
{
	mode_t m = a[1] ? (mode_t)num(a[1], 8, "bad octal mode") : 0755;
	return mkdir(a[0], m) == 0 ? 0 : fail("mkdir", a[0]);
}

static int cmd_touch(char **a)
{
	if (utimensat(AT_FDCWD, a[0], NULL, 0) == 0)
		return 0;
	int fd = errno == ENOENT ? open(a[0], O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
	if (fd < 0)
		return fail("touch", a[0]);
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* raw syscalls (seccomp tests)                                        */

/* Names and minimum operand counts; README.md documents the operands. */
static const struct {
	const char *name;
	int nargs;
} sys_table[] = {
	{"getpid", 0}, {"getppid", 0}, {"personality", 1}, {"keyctl", 1},
	{"unshare", 1}, {"mount", 5}, {"umount2", 2}, {"sethostname", 1},
	{"mknod", 3}, {"chown", 3}, {"io_uring_setup", 1}, {"fsopen", 1},
	{"open_tree", 1}, {"setxattr", 3}, {"reboot-probe", 0}, {"raw", 1},
};

/* "-" stands for a NULL pointer argument. */
static long ptr_arg(const char *s)
{
	return strcmp(s, "-") == 0 ? 0 : (long)s;
}

static int cmd_syscall(char **argv)
{
	const char *name = argv[0], *used = name;
	char **a = argv + 1;
	int na = 0;
	size_t t;
	while (a[na])
		na++;
	for (t = 0; t < COUNT(sys_table) && strcmp(name, sys_table[t].name); t++)
		;
	if (t == COUNT(sys_table) || na < sys_table[t].nargs)
		usage_exit("unknown syscall or missing operands", name);

	long nr = -1, x[6] = {0, 0, 0, 0, 0, 0};
	unsigned char params[512] = {0}; /* >= sizeof(struct io_uring_params) */
	int returns_fd = 0;
#define IS(s) (strcmp(name, s) == 0)
	if (IS("getpid")) {
		nr = SYS_getpid;
	} else if (IS("getppid")) {
		nr = SYS_getppid;
	} else if (IS("personality") || IS("keyctl") || IS("unshare")) {
		nr = IS("personality") ? SYS_personality : IS("keyctl") ? SYS_keyctl
			: SYS_unshare;
		x[0] = (long)num(a[0], 0, "bad integer");
	} else if (IS("mount")) {
		nr = SYS_mount;
		x[0] = ptr_arg(a[0]), x[1] = (long)a[1], x[2] = ptr_arg(a[2]);
		x[3] = (long)num(a[3], 0, "bad mount flags"), x[4] = ptr_arg(a[4]);
	} else if (IS("umount2")) {
		nr = SYS_umount2;
		x[0] = (long)a[0], x[1] = (long)num(a[1], 0, "bad umount flags");
	} else if (IS("sethostname")) {
		nr = SYS_sethostname;
		x[0] = (long)a[0], x[1] = (long)strlen(a[0]);
	} else if (IS("mknod")) {
		unsigned maj, min;
		char c;
		if (sscanf(a[2], "%u:%u%c", &maj, &min, &c) != 2)
			usage_exit("bad device (MAJOR:MINOR)", a[2]);
		/* The kernel's dev encoding (equals glibc makedev for major < 4096). */
		long dev = (long)((min & 0xff) | (maj << 8) | ((min & ~0xffu) << 12));
		long mode = (long)num(a[1], 8, "bad octal mode");
		if (SYS_mknod >= 0) {
			nr = SYS_mknod;
			x[0] = (long)a[0], x[1] = mode, x[2] = dev;
		} else { /* aarch64 has only mknodat */
			nr = SYS_mknodat, used = "mknodat";
			x[0] = AT_FDCWD, x[1] = (long)a[0], x[2] = mode, x[3] = dev;
		}
	} else if (IS("chown")) {
		long uid = (long)num(a[1], 10, "bad uid"), gid = (long)num(a[2], 10, "bad gid");
		if (SYS_chown32 >= 0 || SYS_chown >= 0) {
			/* 32-bit ARM: plain chown takes 16-bit ids, chown32 is the real one */
			nr = SYS_chown32 >= 0 ? SYS_chown32 : SYS_chown;
			used = SYS_chown32 >= 0 ? "chown32" : "chown";
			x[0] = (long)a[0], x[1] = uid, x[2] = gid;
		} else { /* aarch64 has only fchownat */
			nr = SYS_fchownat, used = "fchownat";
			x[0] = AT_FDCWD, x[1] = (long)a[0], x[2] = uid, x[3] = gid;
		}
	} else if (IS("io_uring_setup")) {
		nr = SYS_io_uring_setup, returns_fd = 1;
		x[0] = (long)num(a[0], 0, "bad entries"), x[1] = (long)params;
	} else if (IS("fsopen")) {
		nr = SYS_fsopen, returns_fd = 1;
		x[0] = (long)a[0], x[1] = 1 /* FSOPEN_CLOEXEC */;
	} else if (IS("open_tree")) {
		/* Without OPEN_TREE_CLONE (1) this is an O_PATH open that needs no
		 * privilege, so success vs. EPERM shows what seccomp decided. */
		nr = SYS_open_tree, returns_fd = 1;
		x[0] = AT_FDCWD, x[1] = (long)a[0];
		x[2] = na > 1 ? (long)num(a[1], 0, "bad flags") : O_CLOEXEC;
	} else if (IS("setxattr")) {
		nr = SYS_setxattr;
		x[0] = (long)a[0], x[1] = (long)a[1], x[2] = (long)a[2];
		x[3] = (long)strlen(a[2]);
	} else if (IS("reboot-probe")) {
		/* magic1 = 0 is invalid: the kernel answers EPERM (no CAP_SYS_BOOT)
		 * or EINVAL, so this can never reboot anything. */
		nr = SYS_reboot, used = "reboot";
		x[0] = 0, x[1] = 0, x[2] = 0x01234567; /* LINUX_REBOOT_CMD_RESTART */
	} else if (IS("raw")) {
		nr = (long)num(a[0], 0, "bad syscall number");
		for (int k = 1; k < na && k <= 6; k++)
			x[k - 1] = (long)num(a[k], 0, "bad argument");
	}
#undef IS

	long ret = -1;
	int err = ENOSYS;
	if (nr >= 0) {
		errno = 0;
		ret = syscall(nr, x[0], x[1], x[2], x[3], x[4], x[5]);
		err = ret == -1 ? errno : 0;
		if (returns_fd && ret >= 0)
			close((int)ret);
	}
	j_open('{');
	k_str("syscall", used);
	k_int("nr", nr);
	k_int("ret", ret);
	k_int("errno", err);
	k_str("error", err ? strerror(err) : NULL);
	j_close('}');
	putchar('\n');
	return 0;
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */

static int cmd_help(char **a);

static const struct {
	const char *name;
	int min, max; /* operand counts; max -1 = any */
	int (*fn)(char **);
	const char *usage;
} cmds[] = {
	{"hello", 0, 0, cmd_hello, "greeting with hostname, pid, uid (default)"},
	{"json", 0, 0, cmd_json, "one JSON object describing this process"},
	{"exit", 1, 1, cmd_exit, "N: exit with status N"},
	{"kill-self", 1, 1, cmd_kill_self, "SIG: raise signal number SIG"},
	{"sleep", 1, 1, cmd_sleep, "SECONDS|inf: sleep; as pid 1, exit 128+n on HUP/INT/TERM"},
	{"spin", 1, 1, cmd_spin, "SECONDS|inf: busy loop; as pid 1, like sleep"},
	{"getpid-loop", 1, 1, cmd_getpid_loop, "N: time N raw getpid calls: {n,ns}"},
	{"exe-attack", 1, 1, cmd_exe_attack, "SECONDS: the CVE-2019-5736 attacker (runtime tests)"},
	{"env", 1, 1, cmd_env, "NAME: print $NAME (exit 1 if unset)"},
	{"echo", 0, -1, cmd_echo, "WORD...: print the words"},
	{"cat", 0, -1, cmd_cat, "[PATH|-]...: copy files to stdout (none: stdin)"},
	{"ls", 0, 1, cmd_ls, "[PATH]: directory entries, sorted"},
	{"stat", 1, 1, cmd_stat, "PATH: lstat as JSON"},
	{"write", 2, 2, cmd_write, "PATH TEXT: create/truncate and write TEXT"},
	{"mkdir", 1, 2, cmd_mkdir, "PATH [MODE]: mkdir (default 0755)"},
	{"touch", 1, 1, cmd_touch, "PATH: create, or update times"},
	{"syscall", 1, -1, cmd_syscall, "NAME [ARG...]: raw syscall: {ret,errno,error}"},
	{"help", 0, 0, cmd_help, "this text"},
};

static int cmd_help(char **a)
{
	(void)a;
	printf("usage: hako-probe [COMMAND [ARG...]]\n");
	for (size_t i = 0; i < COUNT(cmds); i++)
		printf("  %-12s %s\n", cmds[i].name, cmds[i].usage);
	printf("syscall NAMEs:");
	for (size_t i = 0; i < COUNT(sys_table); i++)
		printf(" %s", sys_table[i].name);
	putchar('\n');
	return 0;
}

int main(int argc, char **argv)
{
	g_argc = argc;
	g_argv = argv;
	const char *name = argc > 1 ? argv[1] : "hello";
	char *none[] = {NULL};
	char **ops = argc > 1 ? argv + 2 : none;
	int nops = argc > 1 ? argc - 2 : 0;
	for (size_t i = 0; i < COUNT(cmds); i++) {
		if (strcmp(name, cmds[i].name) != 0)
			continue;
		if (nops < cmds[i].min || (cmds[i].max >= 0 && nops > cmds[i].max))
			usage_exit("wrong number of arguments for", name);
		int rc = cmds[i].fn(ops);
		/* Report stdout write errors (EPIPE, ENOSPC) instead of hiding them. */
		if (fflush(stdout) != 0 || ferror(stdout))
			return fail("write", "stdout");
		return rc;
	}
	usage_exit("unknown command", name);
	return 2;
}
