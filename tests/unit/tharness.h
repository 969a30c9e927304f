/*
 * tharness.h - the tiny unit-test harness.
 *
 * A test file defines TEST(name) functions and a main() that calls RUN(name)
 * for each and returns th_finish(). A CHECK that fails records the file, line
 * and expression and the test goes on (so one run shows every failure); a
 * REQUIRE that fails ends the test. th_finish() prints
 * "PROGRAM: N passed, N failed" and returns non-zero if anything failed.
 * scripts/test adds these lines up across all suites.
 */
#ifndef CM_THARNESS_H
#define CM_THARNESS_H

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct th_state {
	const char *prog;
	const char *current;
	int passed, failed, current_failed;
	jmp_buf abort_test;
};
extern struct th_state th;

#define TEST(name) static void name(void)

#define TH_FAIL_(...) do { \
	th.current_failed = 1; \
	fprintf(stderr, "FAIL %s (%s:%d): ", th.current, __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); \
	fputc('\n', stderr); \
} while (0)

#define CHECK(cond) do { if (!(cond)) TH_FAIL_("%s", #cond); } while (0)
#define REQUIRE(cond) do { if (!(cond)) { TH_FAIL_("%s", #cond); longjmp(th.abort_test, 1); } } while (0)
#define CHECK_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) TH_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_); } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
	if (!a_ || !b_ || strcmp(a_, b_) != 0) \
		TH_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
} while (0)
#define CHECK_MEM(a, b, n) do { if (memcmp((a), (b), (n)) != 0) TH_FAIL_("memcmp(%s, %s, %s)", #a, #b, #n); } while (0)

#define RUN(fn) th_run(#fn, fn)

static inline void th_run(const char *name, void (*fn)(void))
{
	th.current = name;
	th.current_failed = 0;
	if (setjmp(th.abort_test) == 0)
		fn();
	if (th.current_failed) {
		th.failed++;
	} else {
		th.passed++;
		if (getenv("TH_VERBOSE"))
			fprintf(stderr, "ok %s\n", name);
	}
}

static inline int th_finish(void)
{
	printf("%s: %d passed, %d failed\n", th.prog, th.passed, th.failed);
	return th.failed ? 1 : 0;
}

#define TH_MAIN_BEGIN(progname) struct th_state th; \
	int main(int argc, char **argv) { (void)argc; (void)argv; th.prog = progname;

#define TH_MAIN_END return th_finish(); }

#endif
