/*
 * test_session_replay.c - replay the whole-session fuzzer's seeds and
 * regression inputs (tests/fuzz/session-seeds/, session-regressions/)
 * through the same harness (tests/fuzz/fuzz_session.c over mem_conn.c),
 * without libFuzzer, so the unit tests under ASan+UBSan catch a broker
 * change that brings a fixed crash back.
 *
 * Every seed is also replayed cut at every length: the harness then tears
 * the broker down in the middle of each flow (half-sent packets, pending
 * acks, paused publishers), which must neither crash nor leak.
 *
 * A failure inside the harness aborts (the harness prints why), which
 * fails the test. The directories are found from MQTTD_SOURCE_DIR (a
 * compile definition or an environment variable), else from __FILE__.
 *
 * Build: link with tests/fuzz/mem_conn.c and every core source except
 * src/net/conn.c, src/daemon/*.c and src/mqttd_passwd.c; -Iinclude -Isrc;
 * -lcmocka -lssl -lcrypto -lev -lcjson -lm -lpthread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../fuzz/fuzz_session.c"

static void source_dir(char *out, size_t cap)
{
    const char *env = getenv("MQTTD_SOURCE_DIR");
    const char *file = __FILE__;
    const char *cut;

    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
#ifdef MQTTD_SOURCE_DIR
    snprintf(out, cap, "%s", MQTTD_SOURCE_DIR);
    return;
#endif
    cut = strstr(file, "tests/unit/");
    if (cut == NULL || cut == file)
        snprintf(out, cap, ".");
    else
        snprintf(out, cap, "%.*s", (int)(cut - file - 1), file);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of dir, sorted; *n set. NULL with *n == 0 when the
 * directory is missing or empty. */
static char **list_dir(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **v = NULL;
    size_t cap = 0;

    *n = 0;
    if (d == NULL)
        return NULL;
    while ((de = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        int w;
        size_t nl = strlen(de->d_name);
        if (de->d_name[0] == '.' ||
            (nl > 3 && strcmp(de->d_name + nl - 3, ".md") == 0))
            continue;
        w = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (w < 0 || (size_t)w >= sizeof(path) || stat(path, &st) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            v = xreallocarray(v, cap, sizeof(*v));
        }
        v[(*n)++] = xstrdup(path);
    }
    closedir(d);
    if (*n)
        qsort(v, *n, sizeof(*v), name_cmp);
    return v;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, n;

    *len = 0;
    assert_non_null(fp);
    do {
        if (*len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = xrealloc(buf, cap);
        }
        n = fread(buf + *len, 1, cap - *len, fp);
        *len += n;
    } while (n > 0);
    fclose(fp);
    return buf;
}

/* Replay every file of tests/fuzz/<sub>; with prefixes, every cut too.
 * Returns the number of files. */
static size_t replay_dir(const char *sub, bool prefixes)
{
    char root[2048], dir[4096];
    char **files;
    size_t n;

    source_dir(root, sizeof(root));
    snprintf(dir, sizeof(dir), "%s/tests/fuzz/%s", root, sub);
    files = list_dir(dir, &n);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *buf = read_all(files[i], &len);
        print_message("replay %s (%zu bytes)\n", files[i], len);
        assert_int_equal(LLVMFuzzerTestOneInput(buf, len), 0);
        for (size_t cut = 1; prefixes && cut < len; cut++)
            assert_int_equal(LLVMFuzzerTestOneInput(buf, cut), 0);
        free(buf);
        free(files[i]);
    }
    free(files);
    return n;
}

static void test_seeds(void **state)
{
    (void)state;
    /* the seeds are part of the tree: finding none is a setup error */
    assert_true(replay_dir("session-seeds", true) >= 4);
}

static void test_regressions(void **state)
{
    (void)state;
    /* part of the tree like the seeds: an empty directory is a setup
     * error, not a pass; every cut of each input is replayed too */
    assert_true(replay_dir("session-regressions", true) >= 2);
}

static void test_empty_and_tiny(void **state)
{
    static const uint8_t progs[][4] = {
        {0x00, 0x00, 0x00, 0x00}, /* open slot 0, then nothing */
        {0xff, 0x02, 0x07, 0x00}, /* every limit; CONNECT into slot 7 */
        {0x00, 0x09, 0x03, 0x0b}, /* EOF on an empty slot, loop */
    };

    (void)state;
    assert_int_equal(LLVMFuzzerTestOneInput(NULL, 0), 0);
    for (size_t i = 0; i < ARRAY_LEN(progs); i++)
        assert_int_equal(LLVMFuzzerTestOneInput(progs[i], sizeof(progs[i])), 0);
}

static int setup(void **state)
{
    (void)state;
    return LLVMFuzzerInitialize(NULL, NULL);
}

static int teardown(void **state)
{
    (void)state;
    log_free(g_log);
    g_log = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_tiny),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_regressions),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
