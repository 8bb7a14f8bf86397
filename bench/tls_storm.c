/*
 * tls_storm.c - mutual-TLS MQTT reconnect storm (issue 19).
 *
 * Opens N mTLS MQTT 3.1.1 connections (CONNECT clean session + SUBSCRIBE)
 * to a broker on 127.0.0.1, keeps each one's TLS session
 * (SSL_get1_session) and one extra "established" client that does PINGREQ
 * round trips continuously.  Then it runs --restart-cmd (which must stop
 * the broker, start it again, wait until it accepts, and print the new
 * broker PID on stdout), and reconnects all N at once with their saved
 * sessions.  The established client runs on its own thread and event
 * loop, so that the handshakes this process does for the N (which take
 * its loop for tens of milliseconds at a time during the storm) do not
 * count in the broker's round trips.  It prints one line:
 *
 *   RESULT n=.. storm_s=.. reconnected=.. resumed=.. resumed_pct=..
 *          retries=.. cpu_us_per_reconnect=.. est_p50_ms=.. est_p99_ms=..
 *
 * storm_s runs from the restart command's return (broker back) to the last
 * SUBACK; the established client reconnects first, then the N at once.
 * Broker CPU: utime+stime of /proc/PID/stat between those two instants.
 * Raw non-blocking sockets + libev (epoll) + OpenSSL, bounded by --timeout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

enum st { ST_IDLE, ST_TCP, ST_TLS, ST_MQTT, ST_UP };

struct cl {
    ev_io io;
    int idx;
    int fd;
    enum st st;
    SSL *ssl;
    SSL_SESSION *sess;
    unsigned char out[128];
    size_t outlen, outoff;
    unsigned char in[64];
    size_t inlen;
    int got_connack, got_suback, reused;
    uint64_t ping_sent; /* established client only */
};

struct run {
    struct ev_loop *loop;
    SSL_CTX *ctx;
    struct sockaddr_in addr;
    struct cl *cls; /* n (the established client: its own struct run) */
    int n;
    int up;          /* clients of cls[0..n) in ST_UP */
    int target;      /* ev_break when up reaches it */
    int storm;       /* 1 while the storm is measured */
    long retries;
    double *rtt; /* ms, established client, during the storm */
    size_t nrtt, caprtt;
    double *rtt0; /* ms, before the restart */
    size_t nrtt0;
    ev_timer tmo;
    int timed_out;
    /* the established client's own thread and loop (est_*), so that its
     * round trips are not held back by this process's handshakes */
    int is_est;
    ev_async cmd;
    unsigned req; /* EST_* (atomic) */
    sem_t upsem;  /* posted when the established client is up */
    ev_timer pace; /* the next PINGREQ, PING_GAP_S after a PINGRESP */
    struct cl *pace_c;
};

/* The established client's pause between a PINGRESP and its next
 * PINGREQ: a steady probe (about 1,000 round trips a second), not a
 * back-to-back loop whose rate, and so the broker's work for it, would
 * depend on how fast each broker answers. */
#define PING_GAP_S 0.001

enum { EST_CONNECT = 1u, EST_STORM = 2u, EST_STOP = 4u };

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_s(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t r = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[r] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long ut = 0, stime = 0;
    /* fields after ')': state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &stime) != 2)
        return -1;
    return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

static size_t mqtt_str(unsigned char *p, const char *s)
{
    size_t l = strlen(s);
    p[0] = (unsigned char)(l >> 8);
    p[1] = (unsigned char)l;
    memcpy(p + 2, s, l);
    return l + 2;
}

/* CONNECT (clean session, keepalive 600) + SUBSCRIBE storm/<idx> QoS 0;
 * the established client (est) is "storm-est": with the id of storm
 * client 0 the two took each other's session over in a loop */
static void build_hello(struct cl *c, int est)
{
    char id[32], topic[32];
    unsigned char v[96], *o = c->out;
    size_t vl = 0, n = 0;
    if (est) {
        snprintf(id, sizeof(id), "storm-est");
        snprintf(topic, sizeof(topic), "storm/est");
    } else {
        snprintf(id, sizeof(id), "storm-%d", c->idx);
        snprintf(topic, sizeof(topic), "storm/%d", c->idx);
    }
    vl += mqtt_str(v + vl, "MQTT");
    v[vl++] = 4;    /* 3.1.1 */
    v[vl++] = 0x02; /* clean session */
    v[vl++] = 0x02;
    v[vl++] = 0x58; /* keepalive 600 s */
    vl += mqtt_str(v + vl, id);
    o[n++] = 0x10;
    o[n++] = (unsigned char)vl;
    memcpy(o + n, v, vl);
    n += vl;
    size_t tl = strlen(topic);
    o[n++] = 0x82;
    o[n++] = (unsigned char)(2 + 2 + tl + 1);
    o[n++] = 0;
    o[n++] = 1; /* packet id */
    n += mqtt_str(o + n, topic);
    o[n++] = 0; /* QoS 0 */
    c->outlen = n;
    c->outoff = 0;
}

static void cl_cb(struct ev_loop *loop, ev_io *w, int revents);

static void cl_close(struct run *r, struct cl *c)
{
    if (r->pace_c == c) {
        ev_timer_stop(r->loop, &r->pace);
        r->pace_c = NULL;
    }
    if (c->fd >= 0) {
        ev_io_stop(r->loop, &c->io);
        close(c->fd);
        c->fd = -1;
    }
    if (c->ssl) {
        /* else SSL_free marks the (shared) session not resumable */
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->st == ST_UP && c->idx < r->n)
        r->up--;
    c->st = ST_IDLE;
}

static int cl_start(struct run *r, struct cl *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&r->addr, sizeof(r->addr)) < 0 &&
        errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->st = ST_TCP;
    c->inlen = 0;
    c->got_connack = c->got_suback = 0;
    c->reused = 0;
    build_hello(c, r->is_est);
    ev_io_init(&c->io, cl_cb, c->fd, EV_WRITE);
    c->io.data = r;
    ev_io_start(r->loop, &c->io);
    return 0;
}

static void cl_retry(struct run *r, struct cl *c)
{
    cl_close(r, c);
    r->retries++;
    if (cl_start(r, c) < 0) {
        fprintf(stderr, "tls_storm: socket: %s\n", strerror(errno));
        ev_break(r->loop, EVBREAK_ALL);
    }
}

static void set_ev(struct run *r, struct cl *c, int ev)
{
    if (c->io.events == ev)
        return;
    ev_io_stop(r->loop, &c->io);
    ev_io_set(&c->io, c->fd, ev);
    ev_io_start(r->loop, &c->io);
}

static void push_rtt(double **a, size_t *n, size_t *cap, double v)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 4096;
        *a = realloc(*a, *cap * sizeof(**a));
        if (!*a)
            abort();
    }
    (*a)[(*n)++] = v;
}

static size_t cap0;

static void send_ping(struct run *r, struct cl *c)
{
    static const unsigned char ping[2] = {0xC0, 0};
    memcpy(c->out, ping, 2);
    c->outlen = 2;
    c->outoff = 0;
    c->ping_sent = now_ns();
    (void)r;
}

/* Parses what arrived; returns -1 on a protocol error. */
static int parse_in(struct run *r, struct cl *c)
{
    for (;;) {
        if (c->inlen < 2)
            return 0;
        size_t rl = c->in[1];
        if (rl & 0x80)
            return -1; /* never expected here */
        if (c->inlen < 2 + rl)
            return 0;
        unsigned char t = c->in[0] & 0xF0;
        if (t == 0x20) {
            if (rl < 2 || c->in[3] != 0)
                return -1;
            c->got_connack = 1;
        } else if (t == 0x90) {
            c->got_suback = 1;
        } else if (t == 0xD0 && c->ping_sent) {
            double ms = (double)(now_ns() - c->ping_sent) / 1e6;
            if (r->storm)
                push_rtt(&r->rtt, &r->nrtt, &r->caprtt, ms);
            else
                push_rtt(&r->rtt0, &r->nrtt0, &cap0, ms);
            c->ping_sent = 0;
            r->pace_c = c;
            ev_timer_stop(r->loop, &r->pace);
            ev_timer_set(&r->pace, PING_GAP_S, 0.);
            ev_timer_start(r->loop, &r->pace);
        }
        memmove(c->in, c->in + 2 + rl, c->inlen - 2 - rl);
        c->inlen -= 2 + rl;
    }
}

static void cl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct cl *c = (struct cl *)w;
    struct run *r = w->data;
    (void)loop;
    (void)revents;
    if (c->st == ST_TCP) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            cl_retry(r, c);
            return;
        }
        c->ssl = SSL_new(r->ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, "localhost");
        if (c->sess)
            SSL_set_session(c->ssl, c->sess);
        c->st = ST_TLS;
    }
    if (c->st == ST_TLS) {
        int rc = SSL_connect(c->ssl);
        if (rc != 1) {
            int e = SSL_get_error(c->ssl, rc);
            if (e == SSL_ERROR_WANT_READ)
                set_ev(r, c, EV_READ);
            else if (e == SSL_ERROR_WANT_WRITE)
                set_ev(r, c, EV_WRITE);
            else {
                ERR_clear_error();
                cl_retry(r, c);
            }
            return;
        }
        c->reused = SSL_session_reused(c->ssl);
        c->st = ST_MQTT;
    }
    /* write pending output */
    while (c->outoff < c->outlen) {
        int rc = SSL_write(c->ssl, c->out + c->outoff,
                           (int)(c->outlen - c->outoff));
        if (rc <= 0) {
            int e = SSL_get_error(c->ssl, rc);
            if (e == SSL_ERROR_WANT_WRITE) {
                set_ev(r, c, EV_WRITE);
                return;
            }
            if (e == SSL_ERROR_WANT_READ)
                break;
            ERR_clear_error();
            cl_retry(r, c);
            return;
        }
        c->outoff += (size_t)rc;
    }
    set_ev(r, c, EV_READ);
    for (;;) {
        int rc = SSL_read(c->ssl, c->in + c->inlen,
                          (int)(sizeof(c->in) - c->inlen));
        if (rc <= 0) {
            int e = SSL_get_error(c->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;
            ERR_clear_error();
            if (c->st == ST_UP && !r->storm && c->idx < r->n)
                return; /* broker went away: reconnected by the storm */
            if (c->st == ST_UP && !r->storm && r->is_est) {
                cl_close(r, c); /* reconnected on EST_CONNECT */
                return;
            }
            cl_retry(r, c);
            return;
        }
        c->inlen += (size_t)rc;
        if (parse_in(r, c) < 0) {
            cl_retry(r, c);
            return;
        }
    }
    if (c->st == ST_MQTT && c->got_connack && c->got_suback) {
        c->st = ST_UP;
        if (c->sess)
            SSL_SESSION_free(c->sess);
        c->sess = SSL_get1_session(c->ssl);
        if (c->idx < r->n) {
            r->up++;
            if (r->up >= r->target)
                ev_break(r->loop, EVBREAK_ALL);
        } else {
            send_ping(r, c);
            ev_feed_event(r->loop, &c->io, EV_WRITE);
            if (r->is_est)
                sem_post(&r->upsem);
            else if (r->up == r->n || r->storm)
                ev_break(r->loop, EVBREAK_ALL);
        }
    } else if (c->st == ST_UP && c->outoff < c->outlen) {
        set_ev(r, c, EV_WRITE | EV_READ);
    }
}

static void pace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct run *r = w->data;
    struct cl *c = r->pace_c;
    (void)revents;
    if (c == NULL || c->st != ST_UP)
        return;
    send_ping(r, c);
    set_ev(r, c, EV_READ | EV_WRITE);
    ev_feed_event(loop, &c->io, EV_WRITE);
}

static void tmo_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct run *r = w->data;
    (void)revents;
    r->timed_out = 1;
    ev_break(loop, EVBREAK_ALL);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *a, size_t n, double p)
{
    if (!n)
        return -1;
    qsort(a, n, sizeof(*a), cmp_d);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return a[i];
}

/* Runs the loop until a break or the timeout; returns -1 on timeout. */
static int run_until(struct run *r, double secs)
{
    r->timed_out = 0;
    ev_timer_init(&r->tmo, tmo_cb, secs, 0);
    r->tmo.data = r;
    ev_timer_start(r->loop, &r->tmo);
    ev_run(r->loop, 0);
    ev_timer_stop(r->loop, &r->tmo);
    return r->timed_out ? -1 : 0;
}

/* est_cmd_cb: a command from the main thread to the established client's
 * thread (its loop runs in est_main). */
static void est_cmd_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    struct run *e = w->data;
    unsigned req = __atomic_exchange_n(&e->req, 0u, __ATOMIC_ACQUIRE);
    (void)revents;
    if (req & EST_STORM)
        e->storm = 1;
    if (req & EST_CONNECT) {
        cl_close(e, &e->cls[0]);
        if (cl_start(e, &e->cls[0]) < 0) {
            perror("tls_storm: socket");
            exit(2);
        }
    }
    if (req & EST_STOP) {
        cl_close(e, &e->cls[0]);
        ev_break(loop, EVBREAK_ALL);
    }
}

static void *est_main(void *arg)
{
    struct run *e = arg;
    ev_run(e->loop, 0);
    return NULL;
}

static void est_send(struct run *e, unsigned req)
{
    __atomic_or_fetch(&e->req, req, __ATOMIC_RELEASE);
    ev_async_send(e->loop, &e->cmd);
}

/* Waits until the established client is up; -1 after 'secs'. */
static int est_wait_up(struct run *e, double secs)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)secs;
    while (sem_timedwait(&e->upsem, &until) != 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

static SSL_CTX *client_ctx(const char *cert, const char *key, const char *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        ERR_print_errors_fp(stderr);
        exit(2);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* no client cache: SSL_free of a connection the broker dropped would
     * remove its session from it and mark it not resumable */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tls_storm --port P --cert F --key F --cafile F "
            "--restart-cmd CMD [--pid PID] [-n N] [--timeout S] "
            "[--settle S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", 1, 0, 'p'},    {"cert", 1, 0, 'c'},
        {"key", 1, 0, 'k'},     {"cafile", 1, 0, 'a'},
        {"restart-cmd", 1, 0, 'r'}, {"pid", 1, 0, 'P'},
        {"timeout", 1, 0, 't'}, {"settle", 1, 0, 's'},
        {"conns", 1, 0, 'n'},   {0, 0, 0, 0}};
    const char *cert = NULL, *key = NULL, *ca = NULL, *rcmd = NULL;
    int port = 0, pid = 0, n = 5000, o;
    double timeout = 120, settle = 1.0;
    while ((o = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'a':
            ca = optarg;
            break;
        case 'r':
            rcmd = optarg;
            break;
        case 'P':
            pid = atoi(optarg);
            break;
        case 't':
            timeout = atof(optarg);
            break;
        case 's':
            settle = atof(optarg);
            break;
        case 'n':
            n = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (!port || !cert || !key || !ca || !rcmd || n < 1)
        usage();
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)n + 64 > rl.rlim_cur) {
        n = (int)rl.rlim_cur - 64;
        fprintf(stderr, "tls_storm: N capped to %d by RLIMIT_NOFILE\n", n);
    }

    struct run r;
    memset(&r, 0, sizeof(r));
    r.n = n;
    r.loop = ev_default_loop(EVFLAG_AUTO);
    r.addr.sin_family = AF_INET;
    r.addr.sin_port = htons((uint16_t)port);
    r.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r.ctx = client_ctx(cert, key, ca);
    r.cls = calloc((size_t)n, sizeof(*r.cls));
    if (!r.cls)
        return 2;
    for (int i = 0; i < n; i++) {
        r.cls[i].idx = i;
        r.cls[i].fd = -1;
    }
    /* the established client: n = 0, so its one client (idx 0) is not
     * one of the N; own SSL_CTX, loop and thread */
    static struct run e;
    e.is_est = 1;
    e.addr = r.addr;
    e.loop = ev_loop_new(EVFLAG_AUTO);
    e.ctx = client_ctx(cert, key, ca);
    e.cls = calloc(1, sizeof(*e.cls));
    if (!e.loop || !e.cls || sem_init(&e.upsem, 0, 0) != 0)
        return 2;
    e.cls[0].fd = -1;
    ev_timer_init(&e.pace, pace_cb, PING_GAP_S, 0.);
    e.pace.data = &e;
    ev_async_init(&e.cmd, est_cmd_cb);
    e.cmd.data = &e;
    ev_async_start(e.loop, &e.cmd);
    pthread_t est_thread;
    if (pthread_create(&est_thread, NULL, est_main, &e) != 0)
        return 2;

    /* phase 1: connect the N in batches of 200, then the established one */
    uint64_t t = now_ns();
    for (int i = 0; i < n; i += 200) {
        int end = i + 200 < n ? i + 200 : n;
        r.target = end;
        for (int j = i; j < end; j++)
            if (cl_start(&r, &r.cls[j]) < 0) {
                perror("tls_storm: socket");
                return 2;
            }
        while (r.up < end)
            if (run_until(&r, timeout) < 0) {
                fprintf(stderr, "tls_storm: timeout, %d/%d up\n", r.up, n);
                return 1;
            }
    }
    est_send(&e, EST_CONNECT);
    if (est_wait_up(&e, timeout) < 0) {
        fprintf(stderr, "tls_storm: established client did not connect\n");
        return 1;
    }
    fprintf(stderr, "tls_storm: %d connected in %.2f s\n", n,
            (double)(now_ns() - t) / 1e9);
    /* baseline pings */
    r.storm = 0;
    run_until(&r, settle);
    int missing = 0;
    for (int i = 0; i < n; i++)
        if (!r.cls[i].sess || !SSL_SESSION_has_ticket(r.cls[i].sess))
            missing++;

    /* phase 2: restart the broker */
    FILE *p = popen(rcmd, "r");
    char line[64] = "";
    if (!p || !fgets(line, sizeof(line), p)) {
        fprintf(stderr, "tls_storm: restart command gave no PID\n");
        return 2;
    }
    pclose(p);
    int npid = atoi(line);
    if (npid > 0)
        pid = npid;
    uint64_t t0 = now_ns();
    double c0 = pid ? cpu_s(pid) : -1;
    r.storm = 1;
    for (int i = 0; i < n; i++)
        cl_close(&r, &r.cls[i]);
    r.up = 0;
    r.retries = 0;
    /* the established client first, then all N at once */
    est_send(&e, EST_STORM | EST_CONNECT);
    if (est_wait_up(&e, timeout) < 0) {
        fprintf(stderr, "tls_storm: established client did not return\n");
        return 1;
    }
    for (int i = 0; i < n; i++)
        if (cl_start(&r, &r.cls[i]) < 0) {
            perror("tls_storm: socket");
            return 2;
        }
    r.target = n;
    int to = 0;
    while (r.up < n && !to)
        to = run_until(&r, timeout) < 0;
    uint64_t t1 = now_ns();
    double c1 = pid ? cpu_s(pid) : -1;
    est_send(&e, EST_STOP);
    pthread_join(est_thread, NULL);
    int resumed = 0;
    for (int i = 0; i < n; i++)
        if (r.cls[i].st == ST_UP && r.cls[i].reused)
            resumed++;
    double storm_s = (double)(t1 - t0) / 1e9;
    printf("RESULT n=%d storm_s=%.3f reconnected=%d resumed=%d "
           "resumed_pct=%.1f retries=%ld sessions_missing=%d "
           "cpu_s=%.2f cpu_us_per_reconnect=%.0f est_samples=%zu "
           "est_p50_ms=%.3f est_p99_ms=%.3f est_max_ms=%.3f "
           "base_p50_ms=%.3f base_p99_ms=%.3f timeout=%d\n",
           n, storm_s, r.up, resumed, 100.0 * resumed / n, r.retries,
           missing, c1 - c0, r.up ? (c1 - c0) * 1e6 / r.up : -1, e.nrtt,
           pct(e.rtt, e.nrtt, 0.5), pct(e.rtt, e.nrtt, 0.99),
           pct(e.rtt, e.nrtt, 1.0), pct(e.rtt0, e.nrtt0, 0.5),
           pct(e.rtt0, e.nrtt0, 0.99), to);
    return to ? 1 : 0;
}
