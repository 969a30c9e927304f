/*
 * credproc.c - running an awscli credential_process and reading its answer.
 *
 * The command line is split into words the way a POSIX shell splits them
 * (single quotes, double quotes, backslashes; no expansion of any kind) and run
 * with posix_spawnp: no shell is involved. The child gets our environment minus
 * the secret AWS variables, our stdin and stderr, and a pipe as stdout. It runs
 * in a process group of its own so that on timeout everything it started is
 * killed with it. We read at most CREDPROC_MAX_OUTPUT bytes until EOF or the
 * deadline, reap the child (killing the group when the deadline passes), then
 * parse the JSON (awscli's format, Version 1).
 *
 * The output holds secrets: every buffer that held it is wiped before it is
 * freed, and no message quotes it.
 */
#include "config/awscfg.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CREDPROC_MAX_OUTPUT (64 * 1024)

extern char **environ;

/* A NULL-terminated vector of malloc'd words. */
struct word_list {
	char **words;
	size_t n, cap;
};

static void word_list_release(struct word_list *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->words[i]);
	free(w->words);
	memset(w, 0, sizeof(*w));
}

/* Append a copy of word (len bytes). Returns 0, or -1 when out of memory. */
static int word_list_add(struct word_list *w, const char *word, size_t len)
{
	char *copy;

	if (w->n + 2 > w->cap) {
		size_t new_cap = w->cap ? w->cap * 2 : 8;
		char **p = realloc(w->words, new_cap * sizeof(*p));

		if (!p)
			return -1;
		w->words = p;
		w->cap = new_cap;
	}
	copy = malloc(len + 1);
	if (!copy)
		return -1;
	memcpy(copy, word, len);
	copy[len] = '\0';
	w->words[w->n++] = copy;
	w->words[w->n] = NULL;
	return 0;
}

/*
 * Split command into words as sh(1) would, without expansions: blanks and
 * newlines separate words; '...' is literal; in "..." a backslash escapes only
 * $ ` " \ and newline (and is otherwise kept); outside quotes a backslash
 * escapes any character, and backslash-newline disappears. "" is an empty word.
 * Returns CM_OK with at least one word, CM_E_CONFIG for an unterminated quote or
 * an empty command, CM_E_NOMEM.
 */
static enum cm_status split_command(const char *command, struct word_list *out,
				    struct cm_err *err)
{
	size_t len = strlen(command);
	char *word = malloc(len + 1);       /* a word is never longer than the command */
	size_t wlen = 0;
	int in_word = 0;
	enum cm_status st = CM_OK;
	const char *c = command;

	memset(out, 0, sizeof(*out));
	if (!word)
		return cm_err_set(err, CM_E_NOMEM, "out of memory");
	while (*c) {
		if (*c == ' ' || *c == '\t' || *c == '\n') {
			if (in_word && word_list_add(out, word, wlen))
				goto out_nomem;
			in_word = 0;
			wlen = 0;
			c++;
		} else if (*c == '\\') {
			c++;
			if (*c == '\n') {
				c++;
			} else if (*c) {
				word[wlen++] = *c++;
				in_word = 1;
			}
			/* A trailing lone backslash is dropped, as sh does at end of input. */
		} else if (*c == '\'') {
			const char *close = strchr(c + 1, '\'');

			if (!close) {
				st = cm_err_set(err, CM_E_CONFIG,
						"credential_process: unterminated single quote");
				goto out_release;
			}
			memcpy(word + wlen, c + 1, (size_t)(close - c - 1));
			wlen += (size_t)(close - c - 1);
			in_word = 1;
			c = close + 1;
		} else if (*c == '"') {
			c++;
			while (*c && *c != '"') {
				if (*c == '\\' && c[1] && strchr("$`\"\\\n", c[1])) {
					if (c[1] != '\n')
						word[wlen++] = c[1];
					c += 2;
				} else {
					word[wlen++] = *c++;
				}
			}
			if (!*c) {
				st = cm_err_set(err, CM_E_CONFIG,
						"credential_process: unterminated double quote");
				goto out_release;
			}
			c++;
			in_word = 1;
		} else {
			word[wlen++] = *c++;
			in_word = 1;
		}
	}
	if (in_word && word_list_add(out, word, wlen))
		goto out_nomem;
	if (out->n == 0) {
		st = cm_err_set(err, CM_E_CONFIG, "credential_process: empty command");
		goto out_release;
	}
	free(word);
	return CM_OK;

out_nomem:
	st = cm_err_set(err, CM_E_NOMEM, "out of memory");
out_release:
	word_list_release(out);
	free(word);
	return st;
}

/*
 * Our environment without the variables that carry secrets. The vector is
 * malloc'd; its strings are borrowed from environ. NULL when out of memory.
 */
static char **child_environment(void)
{
	static const char *const hidden[] = {
		"AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_SECURITY_TOKEN=",
	};
	size_t n = 0, kept = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = malloc((n + 1) * sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int hide = 0;

		for (size_t h = 0; h < sizeof(hidden) / sizeof(hidden[0]); h++)
			if (strncmp(environ[i], hidden[h], strlen(hidden[h])) == 0)
				hide = 1;
		if (!hide)
			env[kept++] = environ[i];
	}
	env[kept] = NULL;
	return env;
}

/* Milliseconds on the monotonic clock. */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Read fd until EOF, CREDPROC_MAX_OUTPUT bytes or the deadline (ms, monotonic).
 * Returns 0 at EOF, 1 on timeout, 2 when the output is too long, -1 on a read
 * error (errno set). *len holds what was read; buf has room for the maximum.
 */
static int read_output(int fd, char *buf, size_t *len, long long deadline)
{
	*len = 0;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		ssize_t n;
		int r;

		if (left <= 0)
			return 1;
		r = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		if (*len == CREDPROC_MAX_OUTPUT) {
			char probe;

			n = read(fd, &probe, 1);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;
			return n == 0 ? 0 : 2;
		}
		n = read(fd, buf + *len, CREDPROC_MAX_OUTPUT - *len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		*len += (size_t)n;
	}
}

/*
 * Wait for pid until the deadline; past it (or when kill_now is set) kill its
 * process group and reap it. Returns the wait status, or -1 when it cannot be
 * had (e.g. SIGCHLD ignored). *killed tells whether we killed it.
 */
static int reap_child(pid_t pid, long long deadline, int kill_now, int *killed)
{
	struct timespec nap = { 0, 10 * 1000 * 1000 };
	int status;
	pid_t r;

	*killed = 0;
	for (;;) {
		if (kill_now || now_ms() >= deadline) {
			kill(-pid, SIGKILL);
			*killed = 1;
			do {
				r = waitpid(pid, &status, 0);
			} while (r < 0 && errno == EINTR);
			return r == pid ? status : -1;
		}
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		nanosleep(&nap, NULL);
	}
}

/*
 * Parse "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM|+HHMM)" into a time_t.
 * A lower-case 't'/'z' or a space for 'T' is accepted too. Returns 0 or -1.
 */
static int parse_iso8601(const char *s, time_t *out)
{
	struct tm tm;
	int year, mon, day, hour, min, sec, consumed = 0;
	long offset = 0;
	const char *p;
	time_t t;

	if (sscanf(s, "%4d-%2d-%2d%n", &year, &mon, &day, &consumed) != 3 || consumed != 10)
		return -1;
	p = s + 10;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	consumed = 0;
	if (sscanf(p, "%2d:%2d:%2d%n", &hour, &min, &sec, &consumed) != 3 || consumed != 8)
		return -1;
	p += 8;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om;

		p++;
		if (sscanf(p, "%2d:%2d%n", &oh, &om, &consumed) == 2 && consumed == 5)
			p += 5;
		else if (sscanf(p, "%2d%2d%n", &oh, &om, &consumed) == 2 && consumed == 4)
			p += 4;
		else
			return -1;
		if (oh > 23 || om > 59)
			return -1;
		offset = sign * (oh * 3600L + om * 60L);
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = t - offset;
	return 0;
}

/* Overwrite every string in a cJSON tree, so freeing it leaves no secret behind. */
static void json_wipe(cJSON *node)
{
	for (; node; node = node->next) {
		if (node->valuestring)
			explicit_bzero(node->valuestring, strlen(node->valuestring));
		json_wipe(node->child);
	}
}

/* A non-empty string member, or NULL. */
static const char *json_string(const cJSON *obj, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
		return NULL;
	return item->valuestring;
}

/*
 * Turn the process output into credentials. Messages name the field at fault
 * and never quote a value. On failure *out is untouched.
 */
static enum cm_status parse_output(const char *text, size_t len, struct aws_credentials *out,
				   struct cm_err *err)
{
	struct aws_credentials creds = { 0 };
	cJSON *root = cJSON_ParseWithLength(text, len);
	const cJSON *version, *item;
	const char *access, *secret, *token;
	enum cm_status st;

	if (!root)
		return cm_err_set(err, CM_E_CREDENTIALS,
				  "credential_process output is not valid JSON");
	if (!cJSON_IsObject(root)) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process output is not a JSON object");
		goto out_free_json;
	}
	version = cJSON_GetObjectItemCaseSensitive(root, "Version");
	if (!cJSON_IsNumber(version)) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process output has no numeric Version");
		goto out_free_json;
	}
	if (version->valuedouble != 1.0) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process output has Version %g; only 1 is supported",
				version->valuedouble);
		goto out_free_json;
	}
	access = json_string(root, "AccessKeyId");
	secret = json_string(root, "SecretAccessKey");
	if (!access || !secret) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process output lacks %s",
				!access ? "AccessKeyId" : "SecretAccessKey");
		goto out_free_json;
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "SessionToken");
	if (item && !cJSON_IsNull(item) && !cJSON_IsString(item)) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process output: SessionToken is not a string");
		goto out_free_json;
	}
	token = json_string(root, "SessionToken");
	item = cJSON_GetObjectItemCaseSensitive(root, "Expiration");
	if (item && !cJSON_IsNull(item)) {
		if (!cJSON_IsString(item) || parse_iso8601(item->valuestring, &creds.expiration)) {
			st = cm_err_set(err, CM_E_CREDENTIALS,
					"credential_process output: Expiration is not an ISO 8601 time");
			goto out_free_json;
		}
	}
	creds.access_key_id = strdup(access);
	creds.secret_access_key = strdup(secret);
	creds.session_token = token ? strdup(token) : NULL;
	if (!creds.access_key_id || !creds.secret_access_key || (token && !creds.session_token)) {
		aws_credentials_release(&creds);
		st = cm_err_set(err, CM_E_NOMEM, "out of memory");
		goto out_free_json;
	}
	*out = creds;
	st = CM_OK;

out_free_json:
	json_wipe(root);
	cJSON_Delete(root);
	return st;
}

enum cm_status awscfg_run_credential_process(const char *command, int timeout_s,
					     struct aws_credentials *out, struct cm_err *err)
{
	static const int reset_signals[] = {
		SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD, SIGUSR1, SIGUSR2,
	};
	struct word_list argv;
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t no_signals, default_signals;
	char **env;
	char *output;
	size_t output_len = 0;
	int pipe_fds[2], read_result, read_errno = 0, status, killed, spawn_errno;
	long long deadline;
	enum cm_status st;
	pid_t pid;

	memset(out, 0, sizeof(*out));
	st = split_command(command, &argv, err);
	if (st != CM_OK)
		return st;
	env = child_environment();
	output = malloc(CREDPROC_MAX_OUTPUT);
	if (!env || !output) {
		st = cm_err_set(err, CM_E_NOMEM, "out of memory");
		goto out_free_buffers;
	}
	if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
		st = cm_err_set(err, CM_E_CREDENTIALS, "credential_process: pipe: %s",
				strerror(errno));
		goto out_free_buffers;
	}

	/* dup2 onto fd 1 clears close-on-exec there; both pipe ends close on exec. */
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
	/*
	 * Its own process group, an empty signal mask and default dispositions for
	 * what a daemon commonly blocks or ignores (SIGPIPE above all), since
	 * ignored signals survive exec.
	 */
	sigemptyset(&no_signals);
	sigemptyset(&default_signals);
	for (size_t i = 0; i < sizeof(reset_signals) / sizeof(reset_signals[0]); i++)
		sigaddset(&default_signals, reset_signals[i]);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &no_signals);
	posix_spawnattr_setsigdefault(&attr, &default_signals);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	spawn_errno = posix_spawnp(&pid, argv.words[0], &actions, &attr, argv.words, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&actions);
	close(pipe_fds[1]);
	if (spawn_errno != 0) {
		st = cm_err_set(err, CM_E_CREDENTIALS, "credential_process: cannot run %s: %s",
				argv.words[0], strerror(spawn_errno));
		goto out_close_pipe;
	}

	deadline = now_ms() + (long long)(timeout_s > 0 ? timeout_s : 1) * 1000;
	read_result = read_output(pipe_fds[0], output, &output_len, deadline);
	if (read_result < 0)
		read_errno = errno;
	status = reap_child(pid, deadline, read_result != 0, &killed);

	if (read_result == 1 || (killed && read_result == 0)) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process timed out after %d s and was killed", timeout_s);
	} else if (read_result == 2) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process wrote more than %d KiB; killed",
				CREDPROC_MAX_OUTPUT / 1024);
	} else if (read_result < 0) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process: reading its output: %s", strerror(read_errno));
	} else if (status == -1) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process: cannot learn its exit status");
	} else if (WIFSIGNALED(status)) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process was killed by signal %d", WTERMSIG(status));
	} else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		st = cm_err_set(err, CM_E_CREDENTIALS,
				"credential_process exited with status %d", WEXITSTATUS(status));
	} else {
		st = parse_output(output, output_len, out, err);
	}

out_close_pipe:
	close(pipe_fds[0]);
out_free_buffers:
	if (output) {
		explicit_bzero(output, CREDPROC_MAX_OUTPUT);
		free(output);
	}
	free(env);
	word_list_release(&argv);
	return st;
}
