/*
 * test_persist.c - unit tests for persist.c against the real broker core:
 * a populated broker (retained messages, sessions with subscriptions,
 * inflight, queue, incoming QoS 2 ids and a will) saved and loaded into a
 * fresh broker; corrupt, truncated, bad-version and missing files; a save
 * that cannot be written; every truncation point and every single-byte
 * change (with a fixed-up checksum) of a real snapshot must load or be
 * moved aside, never crash; fixtures in tests/unit/persist/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <openssl/evp.h>

#include "broker.h"
#include "conf.h"
#include "log.h"
#include "mqtt_codec.h"
#include "msg.h"
#include "persist.h"
#include "retain.h"
#include "router.h"
#include "session.h"
#include "util.h"

/* ---- helpers ---------------------------------------------------------- */

struct fx {
    char dir[64];
    char path[128];
    struct log *lg;
};

static struct broker *new_broker(struct log *lg)
{
    char err[1024];
    struct broker *b = broker_new(ev_default_loop(0), conf_default(18830), lg,
                                  err, sizeof(err));

    assert_non_null(b);
    return b;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/persist-test-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/mqttd.db", f->dir);
    f->lg = log_new();
    *state = f;
    return 0;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (rmdir(p) != 0)
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    struct fx *f = *state;

    rm_dir(f->dir);
    log_free(f->lg);
    free(f);
    return 0;
}

/* Count directory entries whose name contains 'needle'. */
static int count_files(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, needle))
            n++;
    }
    closedir(d);
    return n;
}

static void remove_matching(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, needle)) {
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf;
    long n;

    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const void *p, size_t len)
{
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* Recompute the trailing SHA-256 after an edit. */
static void fix_sum(uint8_t *p, size_t len)
{
    unsigned mdlen = 0;

    assert_true(len >= 32);
    assert_int_equal(
        EVP_Digest(p, len - 32, p + len - 32, &mdlen, EVP_sha256(), NULL), 1);
}

static size_t nsessions(const struct broker *b)
{
    return broker_session_count(b);
}

static struct msg *mk(const char *topic, const char *payload, uint8_t qos,
                      bool retain, int64_t expiry_at)
{
    static const uint8_t props[] = {0x01, 0x01, 0x03, 0x00, 0x04,
                                    't',  'e',  'x',  't'};

    return msg_new(topic, strlen(topic), props, sizeof(props),
                   (const uint8_t *)payload, (uint32_t)strlen(payload), qos,
                   retain, expiry_at);
}

static void put_retained(struct broker *b, const char *topic,
                         const char *payload, int64_t expiry_at)
{
    struct msg *m = mk(topic, payload, 1, true, expiry_at);

    assert_int_equal(retain_set(broker_retain(b), m, 0, 0), 0);
    msg_unref(m);
}

static void enqueue(struct session *s, const char *topic, const char *payload,
                    uint8_t qos, uint32_t sub_id)
{
    struct session_item it = {0};

    it.m = mk(topic, payload, qos, false, 0);
    it.qos = qos;
    it.nsub_ids = sub_id ? 1 : 0;
    it.sub_ids[0] = sub_id;
    session_restore_queued(s, &it); /* takes the reference */
}

static struct session *add_session(struct broker *b, const char *id,
                                   uint32_t expiry, double offline_since)
{
    struct session_info si = {0};
    struct session *s;

    si.client_id = id;
    si.version = MQTT_V5;
    si.expiry = expiry;
    si.offline_since = offline_since;
    si.next_pid = 1;
    s = session_restore(b, &si);
    assert_non_null(s);
    return s;
}

static void subscribe(struct session *s, const char *filter, uint8_t qos,
                      uint8_t flags, uint8_t rh, uint32_t sub_id)
{
    struct session_sub sb = {filter, (uint16_t)strlen(filter), qos, flags, rh,
                             sub_id};

    assert_int_equal(session_restore_sub(s, &sb), 0);
}

static bool online(struct broker *b, const char *id)
{
    struct session *s = broker_session_find(b, id);
    struct session_info si;

    if (s == NULL)
        return false;
    session_info(s, &si);
    return si.online;
}

/* Connect a real MQTT 3.1.1 client with id 'id' (clean session 0) over a
 * socketpair, and run the loop until its session is online. Returns the
 * peer's fd (the caller closes it after broker_free). */
static int attach_client(struct broker *b, const char *id)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t idlen = strlen(id), n = 0;
    uint8_t pkt[64];
    int sv[2];

    assert_true(idlen < 32);
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
        0);
    assert_non_null(
        broker_accept(b, 0, sv[0], (const struct sockaddr *)&sa, sizeof(sa)));
    pkt[n++] = 0x10;
    pkt[n++] = (uint8_t)(12 + idlen);
    memcpy(pkt + n, "\0\4MQTT\4\0\0\x3c", 10);
    n += 10;
    pkt[n++] = 0;
    pkt[n++] = (uint8_t)idlen;
    memcpy(pkt + n, id, idlen);
    n += idlen;
    assert_int_equal(write(sv[1], pkt, n), (ssize_t)n);
    for (int i = 0; i < 1000 && !online(b, id); i++)
        ev_run(ev_default_loop(0), EVRUN_NOWAIT);
    assert_true(online(b, id));
    return sv[1];
}

/*
 * The populated broker:
 *   retained: r/1 (no expiry), r/2 (expires in an hour), r/old (expired)
 *   c1: v5, user "alice", expiry 3600, offline 10 s, two subscriptions,
 *       inflight pid 5 (QoS 1 PUBLISH) + pid 6 (QoS 2 PUBREL), three
 *       queued messages, rx_qos2 {9, 10}, a will, next_pid 42
 *   c2: v3.1.1, never expires, online at save time (a real connection:
 *       the returned fd is its peer)
 *   c3: expiry 0 (not saved)
 *   c4: expired while offline (saved, dropped at load)
 */
static int populate(struct broker *b, int64_t now)
{
    struct session_info si = {0};
    struct session_item it = {0};
    struct session *s;

    put_retained(b, "r/1", "one", 0);
    put_retained(b, "r/2", "two", now + 3600);
    put_retained(b, "r/old", "gone", 1);

    si.client_id = "c1";
    si.username = "alice";
    si.version = MQTT_V5;
    si.expiry = 3600;
    si.offline_since = (double)(now - 10);
    si.next_pid = 42;
    s = session_restore(b, &si);
    assert_non_null(s);
    assert_null(session_restore(b, &si)); /* the same id twice */
    subscribe(s, "t/#", 1, ROUTER_NO_LOCAL, 1, 7);
    subscribe(s, "$share/g/x/+", 2, 0, 0, 0);
    {
        struct session_sub dup = {"t/#", 3, 0, 0, 0, 0};
        assert_int_equal(session_restore_sub(s, &dup), -1);
    }
    it.m = mk("t/inflight", "in1", 1, false, 0);
    it.pid = 5;
    it.qos = 1;
    it.state = SESSION_INFL_PUBLISH;
    it.retain = true;
    it.nsub_ids = 2;
    it.sub_ids[0] = 7;
    it.sub_ids[1] = 8;
    assert_int_equal(session_restore_inflight(s, &it), 0);
    memset(&it, 0, sizeof(it));
    it.pid = 6;
    it.qos = 2;
    it.state = SESSION_INFL_PUBREL;
    assert_int_equal(session_restore_inflight(s, &it), 0);
    enqueue(s, "t/q", "q1", 1, 7);
    enqueue(s, "t/q", "q2", 2, 0);
    enqueue(s, "t/q", "q3", 1, 7);
    session_restore_rx_qos2(s, 9);
    session_restore_rx_qos2(s, 10);
    session_will_set(s, mk("will/c1", "bye", 1, true, 0), 30);

    s = add_session(b, "c2", UINT32_MAX, 0);
    subscribe(s, "a/b", 0, 0, 0, 0);

    s = add_session(b, "c3", 0, (double)now);
    subscribe(s, "c3/t", 1, 0, 0, 0);

    add_session(b, "c4", 10, (double)(now - 100));
    return attach_client(b, "c2"); /* online: saved as offline since now */
}

/* The peer of c2 closes: run the loop until the broker let go of it (the
 * loop is shared by every test: no watcher may outlive its broker). */
static void detach(struct broker *b, int peer)
{
    close(peer);
    for (int i = 0; i < 1000 && broker_client_count(b) > 0; i++)
        ev_run(ev_default_loop(0), EVRUN_NOWAIT);
    assert_int_equal(broker_client_count(b), 0);
}

struct collected {
    struct session_item it[8];
    struct session_sub sub[8];
    size_t n;
};

static void collect_item(const struct session_item *it, void *arg)
{
    struct collected *c = arg;

    assert_true(c->n < ARRAY_LEN(c->it));
    c->it[c->n++] = *it;
}

static void collect_sub(const struct session_sub *sb, void *arg)
{
    struct collected *c = arg;

    assert_true(c->n < ARRAY_LEN(c->sub));
    c->sub[c->n++] = *sb;
}

static void assert_msg(const struct msg *m, const char *topic,
                       const char *payload, uint8_t qos, bool retain)
{
    assert_non_null(m);
    assert_int_equal(m->topic_len, strlen(topic));
    assert_string_equal(m->topic, topic);
    assert_int_equal(m->payload_len, strlen(payload));
    assert_memory_equal(m->payload, payload, strlen(payload));
    assert_int_equal(m->props_len, 9);
    assert_memory_equal(m->props, "\x01\x01\x03\x00\x04text", 9);
    assert_int_equal(m->qos, qos);
    assert_int_equal(m->retain, retain);
}

struct rfound {
    const struct msg *r1, *r2, *rold;
    size_t n;
};

static void find_cb(struct msg *m, void *arg)
{
    struct rfound *rf = arg;

    rf->n++;
    if (strcmp(m->topic, "r/1") == 0)
        rf->r1 = m;
    else if (strcmp(m->topic, "r/2") == 0)
        rf->r2 = m;
    else if (strcmp(m->topic, "r/old") == 0)
        rf->rold = m;
}

/* ---- tests ------------------------------------------------------------ */

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    int64_t now = (int64_t)time(NULL);
    struct broker *b = new_broker(f->lg), *b2;
    struct session *s;
    struct session_info si;
    struct session_counts n;
    struct collected col;
    struct rfound rf = {0};
    char err[512] = "";
    struct stat st;
    const uint16_t *rx;
    size_t nrx;
    int peer;

    peer = populate(b, now);
    assert_int_equal(persist_save(b, f->path, err, sizeof(err)), 0);
    detach(b, peer);
    broker_free(b);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_files(f->dir, ".tmp."), 0);

    b2 = new_broker(f->lg);
    assert_int_equal(persist_load(b2, f->path, err, sizeof(err)), 0);
    assert_int_equal(count_files(f->dir, "corrupt"), 0);

    /* retained: the expired one is gone */
    retain_foreach(broker_retain(b2), find_cb, &rf);
    assert_int_equal(rf.n, 2);
    assert_null(rf.rold);
    assert_msg(rf.r1, "r/1", "one", 1, true);
    assert_int_equal(rf.r1->expiry_at, 0);
    assert_msg(rf.r2, "r/2", "two", 1, true);
    assert_int_equal(rf.r2->expiry_at, now + 3600);

    /* sessions: c1, c2; c3 (expiry 0) and c4 (expired) are not there */
    assert_int_equal(nsessions(b2), 2);
    assert_null(broker_session_find(b2, "c3"));
    assert_null(broker_session_find(b2, "c4"));

    s = broker_session_find(b2, "c1");
    assert_non_null(s);
    session_info(s, &si);
    session_counts(s, &n);
    assert_false(si.online);
    assert_string_equal(si.username, "alice");
    assert_int_equal(si.listener, 0);
    assert_int_equal(si.version, MQTT_V5);
    assert_int_equal(si.expiry, 3600);
    assert_true(si.offline_since == (double)(now - 10));
    assert_int_equal(si.next_pid, 42);
    assert_int_equal(n.subs, 2);
    memset(&col, 0, sizeof(col));
    session_subs_foreach(s, collect_sub, &col);
    assert_int_equal(col.n, 2);
    assert_int_equal(col.sub[0].len, 3);
    assert_memory_equal(col.sub[0].filter, "t/#", 3);
    assert_int_equal(col.sub[0].qos, 1);
    assert_int_equal(col.sub[0].flags, ROUTER_NO_LOCAL);
    assert_int_equal(col.sub[0].rh, 1);
    assert_int_equal(col.sub[0].sub_id, 7);
    assert_int_equal(col.sub[1].len, 12);
    assert_memory_equal(col.sub[1].filter, "$share/g/x/+", 12);
    assert_int_equal(col.sub[1].qos, 2);
    /* inflight, in window order */
    assert_int_equal(n.inflight, 2);
    memset(&col, 0, sizeof(col));
    session_inflight_foreach(s, collect_item, &col);
    assert_int_equal(col.n, 2);
    assert_int_equal(col.it[0].pid, 5);
    assert_int_equal(col.it[0].state, SESSION_INFL_PUBLISH);
    assert_int_equal(col.it[0].qos, 1);
    assert_true(col.it[0].retain);
    assert_int_equal(col.it[0].nsub_ids, 2);
    assert_int_equal(col.it[0].sub_ids[0], 7);
    assert_int_equal(col.it[0].sub_ids[1], 8);
    assert_msg(col.it[0].m, "t/inflight", "in1", 1, false);
    assert_int_equal(col.it[1].pid, 6);
    assert_int_equal(col.it[1].state, SESSION_INFL_PUBREL);
    assert_int_equal(col.it[1].qos, 2);
    assert_null(col.it[1].m);
    /* queue, in order */
    assert_int_equal(n.queued, 3);
    memset(&col, 0, sizeof(col));
    session_queue_foreach(s, collect_item, &col);
    assert_int_equal(col.n, 3);
    {
        const char *want[] = {"q1", "q2", "q3"};
        uint8_t wq[] = {1, 2, 1};
        size_t bytes = 0;
        for (size_t i = 0; i < 3; i++) {
            const struct session_item *qi = &col.it[i];
            assert_msg(qi->m, "t/q", want[i], wq[i], false);
            assert_int_equal(qi->qos, wq[i]);
            assert_int_equal(qi->nsub_ids, wq[i] == 1 ? 1 : 0);
            if (qi->nsub_ids)
                assert_int_equal(qi->sub_ids[0], 7);
            bytes += msg_size(qi->m);
        }
        assert_int_equal(n.queued_bytes, bytes);
    }
    rx = session_rx_qos2(s, &nrx);
    assert_int_equal(nrx, 2);
    assert_int_equal(rx[0], 9);
    assert_int_equal(rx[1], 10);
    assert_msg(si.will, "will/c1", "bye", 1, true);
    assert_int_equal(si.will_delay, 30);

    s = broker_session_find(b2, "c2");
    assert_non_null(s);
    session_info(s, &si);
    session_counts(s, &n);
    assert_false(si.online);
    assert_null(si.username);
    assert_int_equal(si.version, MQTT_V311);
    assert_int_equal(si.expiry, UINT32_MAX);
    assert_true(si.offline_since >= (double)now); /* "offline since save" */
    assert_true(si.offline_since <= (double)time(NULL));
    assert_int_equal(n.subs, 1);

    /* the subscriptions are in the router again: a publish reaches the
     * offline sessions' queues */
    {
        struct msg *m = mk("t/live", "x", 1, false, 0);
        struct msg *m2 = mk("a/b", "y", 1, false, 0);
        broker_publish_sys(b2, m);
        broker_publish_sys(b2, m2);
        msg_unref(m);
        msg_unref(m2);
        session_counts(broker_session_find(b2, "c1"), &n);
        assert_int_equal(n.queued, 4);
        /* c2 subscribed at QoS 0 and QoS 0 is not queued by default */
    }

    /* a second save of the loaded broker is byte-identical except for
     * c2's offline_since, which is now fixed: save twice and compare */
    {
        char p2[160], p3[160];
        uint8_t *a, *c;
        size_t alen, clen;
        snprintf(p2, sizeof(p2), "%s/two.db", f->dir);
        snprintf(p3, sizeof(p3), "%s/three.db", f->dir);
        assert_int_equal(persist_save(b2, p2, err, sizeof(err)), 0);
        assert_int_equal(persist_save(b2, p3, err, sizeof(err)), 0);
        a = read_file(p2, &alen);
        c = read_file(p3, &clen);
        assert_int_equal(alen, clen);
        assert_memory_equal(a, c, alen);
        free(a);
        free(c);
    }
    broker_free(b2);
}

static void test_missing_file(void **state)
{
    struct fx *f = *state;
    struct broker *b = new_broker(f->lg);
    char err[256] = "";

    assert_int_equal(persist_load(b, f->path, err, sizeof(err)), 0);
    assert_int_equal(nsessions(b), 0);
    assert_int_equal(retain_count(broker_retain(b)), 0);
    broker_free(b);
}

/* Save a populated broker to f->path and return the file's bytes. */
static uint8_t *saved_snapshot(struct fx *f, size_t *len)
{
    struct broker *b = new_broker(f->lg);
    char err[256];
    int peer = populate(b, (int64_t)time(NULL));

    assert_int_equal(persist_save(b, f->path, err, sizeof(err)), 0);
    detach(b, peer);
    broker_free(b);
    return read_file(f->path, len);
}

/* Load 'data' from f->path into a fresh broker. Returns true when it was
 * accepted (file still there), false when it was moved aside (then the
 * broker was empty). Never leaves files behind. */
static bool try_load(struct fx *f, struct log *lg, const uint8_t *data,
                     size_t len)
{
    struct broker *b = new_broker(lg);
    char err[256] = "";
    bool kept;

    write_file(f->path, data, len);
    assert_int_equal(persist_load(b, f->path, err, sizeof(err)), 0);
    kept = access(f->path, F_OK) == 0;
    if (!kept) {
        assert_int_equal(count_files(f->dir, "mqttd.db.corrupt-"), 1);
        assert_int_equal(nsessions(b), 0);
        assert_int_equal(retain_count(broker_retain(b)), 0);
        remove_matching(f->dir, "mqttd.db.corrupt-");
    } else {
        unlink(f->path);
    }
    broker_free(b);
    return kept;
}

static void test_corrupt_byte(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *data = saved_snapshot(f, &len);

    assert_true(try_load(f, f->lg, data, len)); /* intact: accepted */
    data[len / 2] ^= 0x40;
    assert_false(try_load(f, f->lg, data, len));
    data[len / 2] ^= 0x40;
    data[len - 1] ^= 0x01; /* the checksum itself */
    assert_false(try_load(f, f->lg, data, len));
    free(data);
}

static void test_truncated(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *data = saved_snapshot(f, &len);

    assert_false(try_load(f, f->lg, data, len / 2));
    assert_false(try_load(f, f->lg, data, 0));
    /* every truncation point */
    for (size_t n = 1; n < len; n++)
        assert_false(try_load(f, NULL, data, n));
    free(data);
}

static void test_bad_version_and_magic(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *data = saved_snapshot(f, &len);

    data[11] = 2; /* version 2, valid checksum */
    fix_sum(data, len);
    assert_false(try_load(f, f->lg, data, len));
    data[11] = 1;
    data[0] = 'X';
    fix_sum(data, len);
    assert_false(try_load(f, f->lg, data, len));
    free(data);
}

/* Structural damage with a valid checksum: every byte after the header
 * changed to a few values. Either loads or is moved aside; ASan/UBSan
 * catch any out-of-bounds read or huge allocation. */
static void test_every_byte_with_valid_sum(void **state)
{
    struct fx *f = *state;
    size_t len, accepted = 0, refused = 0;
    uint8_t *data = saved_snapshot(f, &len);
    static const uint8_t vals[] = {0x00, 0xff, 0x7f, 0x01};

    for (size_t i = 12; i < len - 32; i++) {
        uint8_t orig = data[i];
        for (size_t v = 0; v < ARRAY_LEN(vals); v++) {
            if (vals[v] == orig)
                continue;
            data[i] = vals[v];
            fix_sum(data, len);
            if (try_load(f, NULL, data, len))
                accepted++;
            else
                refused++;
        }
        data[i] = orig;
    }
    /* payload bytes may change freely, lengths may not */
    assert_true(accepted > 0);
    assert_true(refused > 0);
    free(data);
}

static void test_save_fails(void **state)
{
    struct fx *f = *state;
    struct broker *b = new_broker(f->lg);
    char err[256] = "", path[192], sub[160];
    uint8_t *before, *after;
    size_t blen, alen;

    put_retained(b, "r/1", "one", 0);

    /* a directory that does not exist */
    snprintf(path, sizeof(path), "%s/nope/mqttd.db", f->dir);
    assert_int_equal(persist_save(b, path, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(count_files(f->dir, ".tmp."), 0);

    /* rename fails (the target is a non-empty directory): the temporary
     * file is removed */
    snprintf(sub, sizeof(sub), "%s/isdir", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof(path), "%s/isdir/x", f->dir);
    write_file(path, "x", 1);
    err[0] = '\0';
    assert_int_equal(persist_save(b, sub, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(count_files(f->dir, ".tmp."), 0);
    unlink(path);
    rmdir(sub);

    /* a path too long for the temporary name */
    {
        char longp[5000];
        memset(longp, 'a', sizeof(longp) - 1);
        longp[sizeof(longp) - 1] = '\0';
        assert_int_equal(persist_save(b, longp, err, sizeof(err)), -1);
    }

    /* a good save, then one that hits "disk full" (RLIMIT_FSIZE: write
     * fails with EFBIG): the old file is untouched, no temp file left */
    assert_int_equal(persist_save(b, f->path, err, sizeof(err)), 0);
    before = read_file(f->path, &blen);
    {
        char big[8192];
        struct rlimit old, lim;
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        put_retained(b, "r/big", big, 0);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = blen + 100;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        err[0] = '\0';
        assert_int_equal(persist_save(b, f->path, err, sizeof(err)), -1);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, SIG_DFL);
        assert_non_null(strstr(err, "cannot write"));
        assert_int_equal(count_files(f->dir, ".tmp."), 0);
    }
    after = read_file(f->path, &alen);
    assert_int_equal(blen, alen);
    assert_memory_equal(before, after, blen);
    free(before);
    free(after);
    broker_free(b);
}

/* Fixtures: a golden file of format version 1 and damaged copies. */
static void fixture_path(char *out, size_t outlen, const char *name)
{
    const char *src = getenv("MQTTD_SOURCE_DIR");

    snprintf(out, outlen, "%s/tests/unit/persist/%s", src ? src : ".", name);
}

static void test_fixtures(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *name;
        bool ok;
    } cases[] = {
        {"valid-v1.db", true},        {"corrupt-byte.db", false},
        {"truncated.db", false},      {"bad-version.db", false},
        {"bad-magic.db", false},      {"record-overrun.db", false},
        {"huge-sub-count.db", false}, {"trailing-in-record.db", false},
        {"empty.db", false},
    };

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char p[512];
        size_t len;
        uint8_t *data;
        fixture_path(p, sizeof(p), cases[i].name);
        data = read_file(p, &len);
        if (cases[i].ok) {
            struct broker *b = new_broker(f->lg);
            char err[256];
            struct session *s;
            struct session_info si;
            struct collected col;
            struct rfound rf = {0};
            write_file(f->path, data, len);
            assert_int_equal(persist_load(b, f->path, err, sizeof(err)), 0);
            retain_foreach(broker_retain(b), find_cb, &rf);
            assert_int_equal(rf.n, 1);
            assert_non_null(rf.r1);
            assert_int_equal(rf.r1->payload_len, 5);
            assert_memory_equal(rf.r1->payload, "hello", 5);
            s = broker_session_find(b, "fixture");
            assert_non_null(s);
            session_info(s, &si);
            assert_int_equal(si.expiry, UINT32_MAX);
            memset(&col, 0, sizeof(col));
            session_subs_foreach(s, collect_sub, &col);
            assert_int_equal(col.n, 1);
            assert_int_equal(col.sub[0].len, 4);
            assert_memory_equal(col.sub[0].filter, "fx/#", 4);
            memset(&col, 0, sizeof(col));
            session_queue_foreach(s, collect_item, &col);
            assert_int_equal(col.n, 1);
            assert_int_equal(col.it[0].m->payload_len, 6);
            broker_free(b);
            unlink(f->path);
        } else {
            if (try_load(f, f->lg, data, len))
                fail_msg("fixture %s was accepted", cases[i].name);
        }
        free(data);
    }
}

static void test_save_bg(void **state)
{
    struct fx *f = *state;
    struct broker *b = new_broker(f->lg), *b2;
    char err[256] = "";
    pid_t pid;
    int st;

    put_retained(b, "r/1", "one", 0);
    pid = persist_save_bg(b, f->path, err, sizeof(err));
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    b2 = new_broker(f->lg);
    assert_int_equal(persist_load(b2, f->path, err, sizeof(err)), 0);
    assert_int_equal(retain_count(broker_retain(b2)), 1);
    broker_free(b2);

    /* failure in the child: exit status 1 */
    pid = persist_save_bg(b, "/nonexistent-dir/x.db", err, sizeof(err));
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    broker_free(b);
}

int main(void)
{
    /* as the daemon: a peer gone before its CONNACK is not fatal */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_version_and_magic, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_every_byte_with_valid_sum, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_save_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixtures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_bg, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
