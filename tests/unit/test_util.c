/*
 * test_util.c - unit tests for util.c: the x*alloc family's semantics,
 * util_strtonum, UTF-8 validation, constant-time compare, hex both ways,
 * FNV-1a vectors, edit distance, atomic file writes and the line reader over
 * real temporary files (empty, no trailing newline, CRLF, over-long line, NUL
 * byte, size limit, open errors).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

static void test_xalloc(void **state)
{
    char *p, *q;
    int *z;

    (void)state;
    p = xmalloc(0); /* never NULL, even for 0 bytes */
    assert_non_null(p);
    free(p);
    z = xcalloc(16, sizeof(*z));
    for (int i = 0; i < 16; i++)
        assert_int_equal(z[i], 0);
    z = xreallocarray(z, 1024, sizeof(*z));
    assert_int_equal(z[15], 0); /* contents kept */
    free(z);
    p = xstrdup("hello");
    assert_string_equal(p, "hello");
    q = xstrndup("hello world", 5); /* NUL-terminated copy of a prefix */
    assert_string_equal(q, "hello");
    free(p);
    free(q);
    p = xmemdup("a\0b", 3);
    assert_memory_equal(p, "a\0b", 3);
    free(p);
    p = xmemdup(NULL, 0);
    assert_non_null(p);
    free(p);
}

static void test_strtonum(void **state)
{
    const char *err = NULL;
    long long v = 0;

    (void)state;
    assert_int_equal(util_strtonum("42", 0, 100, &v, &err), 0);
    assert_int_equal(v, 42);
    assert_int_equal(util_strtonum("-5", -10, 10, &v, &err), 0);
    assert_int_equal(v, -5);
    assert_int_equal(util_strtonum("100", 0, 100, &v, &err), 0);
    assert_int_equal(util_strtonum("101", 0, 100, &v, &err), -1);
    assert_string_equal(err, "too large");
    assert_int_equal(util_strtonum("-1", 0, 100, &v, &err), -1);
    assert_string_equal(err, "too small");
    assert_int_equal(util_strtonum("99999999999999999999", 0, 100, &v, &err),
                     -1);
    assert_string_equal(err, "too large");
    assert_int_equal(
        util_strtonum("-99999999999999999999", -100, 100, &v, &err), -1);
    assert_string_equal(err, "too small");
    v = 7;
    assert_int_equal(util_strtonum("12x", 0, 100, &v, &err), -1);
    assert_string_equal(err, "invalid");
    assert_int_equal(v, 7); /* untouched on error */
    assert_int_equal(util_strtonum("", 0, 100, &v, &err), -1);
    assert_string_equal(err, "invalid");
    assert_int_equal(util_strtonum(NULL, 0, 100, &v, &err), -1);
    assert_int_equal(util_strtonum("5", 10, 0, &v, &err), -1); /* min>max */
    assert_string_equal(err, "invalid");
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(util_utf8_valid("", 0));
    assert_true(util_utf8_valid("abc", 3));
    assert_true(util_utf8_valid("\xc3\xa9", 2));          /* U+00E9 */
    assert_true(util_utf8_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    assert_false(util_utf8_valid("a\0b", 3));             /* U+0000 */
    assert_false(util_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(util_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(util_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(util_utf8_valid("\xc3", 1));             /* truncated */
    assert_false(util_utf8_valid("\xc3\x28", 2));         /* bad continuation */
}

static void test_ct_memeq(void **state)
{
    (void)state;
    assert_true(util_ct_memeq("abcd", "abcd", 4));
    assert_false(util_ct_memeq("abcd", "abce", 4));
    assert_true(util_ct_memeq("x", "y", 0));
}

/* FNV-1a 64 test vectors (Fowler/Noll/Vo reference). */
static void test_fnv1a(void **state)
{
    (void)state;
    assert_true(util_fnv1a("", 0) == 0xcbf29ce484222325ULL);
    assert_true(util_fnv1a("a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(util_fnv1a("foobar", 6) == 0x85944171f73967e8ULL);
}

static void test_hex(void **state)
{
    char out[16], back[16];

    (void)state;
    assert_ptr_equal(util_hex("\x00\x9f\xff"
                              "A",
                              4, out),
                     out + 8);
    assert_string_equal(out, "009fff41");
    assert_int_equal(util_unhex(out, 8, back, sizeof(back)), 4);
    assert_memory_equal(back,
                        "\x00\x9f\xff"
                        "A",
                        5); /* NUL-terminated */
    assert_int_equal(util_unhex("9FfF", 4, back, sizeof(back)), 2);
    assert_memory_equal(back, "\x9f\xff", 3);
    assert_int_equal(util_unhex("abc", 3, back, sizeof(back)), -1); /* odd */
    assert_int_equal(util_unhex("zz", 2, back, sizeof(back)), -1);
    assert_int_equal(util_unhex("0a0b", 4, back, 2), -1); /* no room */
    assert_int_equal(util_unhex("0a0b", 4, back, 3), 2);
    assert_int_equal(util_unhex("", 0, back, 1), 0);
    assert_int_equal(util_hexval('7'), 7);
    assert_int_equal(util_hexval('c'), 12);
    assert_int_equal(util_hexval('C'), 12);
    assert_int_equal(util_hexval('g'), -1);
    assert_int_equal(util_hexval('/'), -1);
}

static void test_levenshtein(void **state)
{
    char long_s[80];

    (void)state;
    assert_int_equal(util_levenshtein("", ""), 0);
    assert_int_equal(util_levenshtein("kitten", "sitting"), 3);
    assert_int_equal(util_levenshtein("listner", "listener"), 1);
    memset(long_s, 'a', sizeof(long_s) - 1);
    long_s[sizeof(long_s) - 1] = '\0';
    assert_true(util_levenshtein(long_s, "a") >= 65);
}

static void test_now_mono(void **state)
{
    double a, b;

    (void)state;
    a = util_now_mono();
    b = util_now_mono();
    assert_true(a > 0 && b >= a);
}

/* --- files ---------------------------------------------------------------- */

/* A temporary directory per test, removed with its files at the end. */
struct tmp {
    char dir[64];
    char path[128];
};

static void tmp_open(struct tmp *t)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/test_util.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/f", t->dir);
}

static void tmp_write(struct tmp *t, const void *data, size_t len)
{
    FILE *f = fopen(t->path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void tmp_close(struct tmp *t)
{
    unlink(t->path);
    assert_int_equal(rmdir(t->dir), 0);
}

static void test_write_file_atomic(void **state)
{
    struct tmp t;
    struct stat st;
    char buf[16] = {0};
    FILE *f;

    (void)state;
    tmp_open(&t);
    assert_int_equal(util_write_file_atomic(t.path, "one", 3, 0600), 0);
    assert_int_equal(util_write_file_atomic(t.path, "two!", 4, 0640), 0);
    assert_int_equal(stat(t.path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    f = fopen(t.path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof(buf), f), 4);
    fclose(f);
    assert_string_equal(buf, "two!");
    tmp_close(&t); /* rmdir fails if a temporary file was left behind */
    assert_int_equal(util_write_file_atomic("/nonexistent-dir/x", "a", 1, 0600),
                     -1);
}

/* Lines seen by the callback, counted and (while they fit) joined with
 * '|'; a line "bad" is refused. */
struct lines {
    char out[256];
    size_t n;
};

static int line_cb(void *ud, const char *line, size_t len, const char **why)
{
    struct lines *l = ud;
    size_t o = strlen(l->out);

    if (len == 3 && memcmp(line, "bad", 3) == 0) {
        *why = "bad line";
        return -1;
    }
    l->n++;
    if (o + len + 2 > sizeof(l->out)) /* long files: only counted */
        return 0;
    memcpy(l->out + o, line, len);
    l->out[o + len] = '|';
    l->out[o + len + 1] = '\0';
    return 0;
}

/* read: util_read_lines over a temp file holding data[0..len). */
static int read_file(const void *data, size_t len, size_t max_file,
                     size_t max_line, struct lines *l, char *err, size_t errlen,
                     char *path_out)
{
    struct tmp t;
    int rc;

    memset(l, 0, sizeof(*l));
    err[0] = '\0';
    tmp_open(&t);
    tmp_write(&t, data, len);
    rc = util_read_lines(t.path, max_file, max_line, line_cb, l, err, errlen);
    strcpy(path_out, t.path);
    tmp_close(&t);
    return rc;
}

static void test_read_lines(void **state)
{
    struct lines l;
    char err[256], path[128], want[256];
    static char big[10000];

    (void)state;
    /* empty file: no lines */
    assert_int_equal(read_file("", 0, 100, 10, &l, err, sizeof(err), path), 0);
    assert_int_equal(l.n, 0);
    /* no trailing newline: the last line still counts */
    assert_int_equal(read_file("a\nbc", 4, 100, 10, &l, err, sizeof(err), path),
                     0);
    assert_string_equal(l.out, "a|bc|");
    /* trailing newline: no extra empty line; empty lines in between do */
    assert_int_equal(
        read_file("a\n\nb\n", 5, 100, 10, &l, err, sizeof(err), path), 0);
    assert_string_equal(l.out, "a||b|");
    /* CRLF: the '\r' is left to the caller */
    assert_int_equal(
        read_file("a\r\nb\r\n", 6, 100, 10, &l, err, sizeof(err), path), 0);
    assert_string_equal(l.out, "a\r|b\r|");
    /* a line of exactly max_line bytes is fine, one more is not */
    assert_int_equal(read_file("0123456789\n0123456789a\n", 23, 100, 10, &l,
                               err, sizeof(err), path),
                     -1);
    snprintf(want, sizeof(want), "%s:2: line longer than 10 bytes", path);
    assert_string_equal(err, want);
    assert_int_equal(l.n, 1);
    /* NUL byte */
    assert_int_equal(
        read_file("ok\nx\0y\n", 7, 100, 10, &l, err, sizeof(err), path), -1);
    snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
    assert_string_equal(err, want);
    /* the callback's reason, with FILE:LINE */
    assert_int_equal(
        read_file("a\nb\nbad\n", 8, 100, 10, &l, err, sizeof(err), path), -1);
    snprintf(want, sizeof(want), "%s:3: bad line", path);
    assert_string_equal(err, want);
    /* max size: exactly max_file bytes is fine, one more is not */
    memset(big, 'x', sizeof(big));
    for (size_t i = 9; i < sizeof(big); i += 10)
        big[i] = '\n';
    assert_int_equal(read_file(big, 5000, 5000, 10, &l, err, sizeof(err), path),
                     0);
    assert_int_equal(l.n, 500);
    assert_int_equal(read_file(big, 5001, 5000, 10, &l, err, sizeof(err), path),
                     -1);
    snprintf(want, sizeof(want), "%s: file larger than 5000 bytes", path);
    assert_string_equal(err, want);
    assert_int_equal(l.n, 0); /* nothing parsed */
    /* larger than the first read buffer (4096) */
    assert_int_equal(read_file(big, sizeof(big), sizeof(big), 10, &l, err,
                               sizeof(err), path),
                     0);
    assert_int_equal(l.n, 1000);
}

static void test_read_lines_errors(void **state)
{
    struct lines l;
    char err[256];
    struct tmp t;

    (void)state;
    memset(&l, 0, sizeof(l));
    assert_int_equal(util_read_lines("/nonexistent/file", 100, 10, line_cb, &l,
                                     err, sizeof(err)),
                     -1);
    assert_string_equal(err, "/nonexistent/file: cannot open: No such file or "
                             "directory");
    tmp_open(&t);
    assert_int_equal(
        util_read_lines(t.dir, 100, 10, line_cb, &l, err, sizeof(err)), -1);
    assert_true(strstr(err, ": not a readable file") != NULL);
    /* err may be NULL */
    assert_int_equal(util_read_lines(t.dir, 100, 10, line_cb, &l, NULL, 0), -1);
    tmp_write(&t, "a\n", 2);
    assert_int_equal(util_read_lines(t.path, 100, 10, line_cb, &l, NULL, 0), 0);
    tmp_close(&t);
    /* the buffer form names the input as told */
    memset(&l, 0, sizeof(l));
    assert_int_equal(util_parse_lines("NAME", "x\nbad", 5, 100, 10, line_cb, &l,
                                      err, sizeof(err)),
                     -1);
    assert_string_equal(err, "NAME:2: bad line");
    assert_int_equal(util_parse_lines("NAME", "abc", 3, 2, 10, line_cb, &l, err,
                                      sizeof(err)),
                     -1);
    assert_string_equal(err, "NAME: file larger than 2 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xalloc),
        cmocka_unit_test(test_strtonum),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_ct_memeq),
        cmocka_unit_test(test_fnv1a),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_levenshtein),
        cmocka_unit_test(test_now_mono),
        cmocka_unit_test(test_write_file_atomic),
        cmocka_unit_test(test_read_lines),
        cmocka_unit_test(test_read_lines_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
