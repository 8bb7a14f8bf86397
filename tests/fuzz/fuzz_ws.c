/*
 * fuzz_ws.c - libFuzzer harness for the WebSocket layer
 * (src/net/transport_ws.c: the upgrade request checks, the frame-header
 * checker and libwslay behind it) over an in-memory lower transport.
 *
 * The first input byte picks the read chunk size (1..256 bytes per lower
 * read, so every split of headers and frames is reached), whether
 * websockets_path and websockets_origin are set, and a small frame limit;
 * the rest is what the client sends: the upgrade request, then frames.
 * Checked properties:
 *   - no read or write out of bounds, no leak (ASan), no UB (UBSan);
 *   - the handshake ends (OK, CLOSED or ERROR) within the input;
 *   - after an OK handshake, read() never returns more than its buffer,
 *     and every read ends in OK, WANT_READ, CLOSED or ERROR; write() of
 *     MQTT bytes frames them (the lower transport gets more bytes).
 *
 * Build: see tests/fuzz/run-fuzz.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "transport.h"
#include "transport_ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c))                                                              \
            abort();                                                           \
    } while (0)

struct mem {
    struct transport base;
    const uint8_t *in;
    size_t len, off, chunk;
    size_t written;
};

static enum xprt_io mem_read(struct transport *t, void *buf, size_t len,
                             size_t *n)
{
    struct mem *m = (struct mem *)t;
    size_t k = m->len - m->off;

    *n = 0;
    if (k == 0)
        return XPRT_CLOSED;
    if (k > m->chunk)
        k = m->chunk;
    if (k > len)
        k = len;
    memcpy(buf, m->in + m->off, k);
    m->off += k;
    *n = k;
    return XPRT_OK;
}

static enum xprt_io mem_write(struct transport *t, const void *buf, size_t len,
                              size_t *n)
{
    struct mem *m = (struct mem *)t;

    (void)buf;
    m->written += len;
    *n = len;
    return XPRT_OK;
}

static void mem_free(struct transport *t)
{
    (void)t;
}

static const struct xprt_ops mem_ops = {
    .read = mem_read,
    .write = mem_write,
    .free = mem_free,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct log *lg;
    static uint8_t buf[64 * 1024];
    static const char *const origins[] = {"http://ok.example"};
    struct log_settings ls = {0};
    struct mem m;
    struct ws_conf wc;
    struct transport *t;
    const struct xprt_stage *st = NULL;
    enum xprt_io r = XPRT_WANT_READ;
    char why[256];

    if (size < 1)
        return 0;
    if (lg == NULL) {
        lg = log_new();
        ls.dests = LOGD_NONE;
        (void)log_configure(lg, &ls, why, sizeof(why));
    }
    memset(&m, 0, sizeof(m));
    m.base.ops = &mem_ops;
    m.in = data + 1;
    m.len = size - 1;
    m.chunk = 1 + (data[0] & 0x0f) * 17;
    memset(&wc, 0, sizeof(wc));
    wc.path = (data[0] & 0x10) ? "/mqtt" : NULL;
    wc.origins = origins;
    wc.norigins = (data[0] & 0x20) ? 1 : 0;
    wc.headers_size = 512;
    wc.max_frame = (data[0] & 0x40) ? 300 : 1u << 20;
    wc.log = lg;
    wc.peer = "fuzz";
    t = transport_ws_server(&wc);
    t->lower = &m.base;
    /* the handshake: at most one step per input byte (and one more) */
    for (size_t i = 0; i <= size && r != XPRT_OK; i++) {
        r = t->ops->handshake(t, why, sizeof(why), &st);
        if (r == XPRT_ERROR || r == XPRT_CLOSED)
            goto out;
    }
    CHECK(r == XPRT_OK);
    for (size_t i = 0; i <= size; i++) {
        size_t n = 0;

        r = t->ops->read(t, buf, sizeof(buf), &n);
        CHECK(n <= sizeof(buf));
        if (r != XPRT_OK)
            break;
        CHECK(n > 0);
    }
    CHECK(r == XPRT_OK || r == XPRT_WANT_READ || r == XPRT_CLOSED ||
          r == XPRT_ERROR);
    if (r != XPRT_ERROR) {
        size_t before = m.written, n = 0;

        if (t->ops->write(t, "\x30\x03\x00\x01t", 5, &n) == XPRT_OK) {
            CHECK(n == 5);
            CHECK(m.written > before + 5);
        }
    }
    t->ops->shutdown(t);
out:
    t->ops->free(t);
    return 0;
}
