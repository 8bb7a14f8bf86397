/*
 * authq.c - a worker thread for auth_connect() (see authq.h).
 */
#include "authq.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <openssl/crypto.h>

#include "util.h"

struct authq_job {
    struct authq_job *next;
    struct auth *auth;
    struct auth_client c; /* strings below are owned copies */
    char *client_id, *username, *identity, *ip;
    uint8_t *password;
    authq_done_fn fn;
    void *ud;
    bool cancelled; /* loop thread only */
    enum auth_result r;
    const char *reason;
    bool bad;
};

struct authq {
    struct ev_loop *loop;
    ev_async async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct authq_job *todo, **todo_tail;
    struct authq_job *done;
    bool stop;
};

static void job_free(struct authq_job *j)
{
    auth_unref(j->auth);
    free(j->client_id);
    free(j->username);
    free(j->identity);
    free(j->ip);
    if (j->password) {
        OPENSSL_cleanse(j->password, j->c.password_len);
        free(j->password);
    }
    free(j);
}

static void *worker(void *arg)
{
    struct authq *q = arg;

    pthread_mutex_lock(&q->mu);
    for (;;) {
        struct authq_job *j;
        while (!q->stop && q->todo == NULL)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->stop)
            break;
        j = q->todo;
        q->todo = j->next;
        if (q->todo == NULL)
            q->todo_tail = &q->todo;
        pthread_mutex_unlock(&q->mu);

        j->reason = NULL;
        j->bad = false;
        j->r = auth_connect(j->auth, &j->c, &j->reason, &j->bad);

        pthread_mutex_lock(&q->mu);
        j->next = q->done;
        q->done = j;
        ev_async_send(q->loop, &q->async);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    struct authq *q = w->data;
    struct authq_job *list, *rev = NULL;

    (void)loop;
    (void)revents;
    pthread_mutex_lock(&q->mu);
    list = q->done;
    q->done = NULL;
    pthread_mutex_unlock(&q->mu);
    while (list) { /* restore completion order */
        struct authq_job *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        struct authq_job *j = rev;
        rev = j->next;
        if (!j->cancelled)
            j->fn(j->ud, j->r, j->reason, j->bad);
        job_free(j);
    }
}

struct authq *authq_new(struct ev_loop *loop)
{
    struct authq *q = xcalloc(1, sizeof(*q));

    q->loop = loop;
    q->todo_tail = &q->todo;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    ev_async_init(&q->async, async_cb);
    q->async.data = q;
    ev_async_start(loop, &q->async);
    ev_unref(loop); /* the async watcher alone must not keep the loop */
    {
        /* the worker takes no signals: they belong to the loop thread
         * (libev's signalfd needs them blocked everywhere else) */
        sigset_t all, old;
        int rc;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        rc = pthread_create(&q->thread, NULL, worker, q);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            fprintf(stderr, "mqttd: cannot start the auth worker thread\n");
            abort();
        }
    }
    return q;
}

void authq_free(struct authq *q)
{
    struct authq_job *j;

    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    ev_ref(q->loop);
    ev_async_stop(q->loop, &q->async);
    while ((j = q->todo) != NULL) {
        q->todo = j->next;
        job_free(j);
    }
    while ((j = q->done) != NULL) {
        q->done = j->next;
        job_free(j);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

struct authq_job *authq_submit(struct authq *q, struct auth *a,
                               const struct auth_client *c, authq_done_fn fn,
                               void *ud)
{
    struct authq_job *j = xcalloc(1, sizeof(*j));

    j->auth = auth_ref(a);
    j->fn = fn;
    j->ud = ud;
    j->c = *c;
    j->c.client_id = j->client_id = dup_or_null(c->client_id);
    j->c.username = j->username = dup_or_null(c->username);
    j->c.cert_identity = j->identity = dup_or_null(c->cert_identity);
    j->c.peer_ip = j->ip = dup_or_null(c->peer_ip);
    if (c->password) {
        j->password = xmemdup(c->password, c->password_len);
        j->c.password = j->password;
    }
    pthread_mutex_lock(&q->mu);
    *q->todo_tail = j;
    q->todo_tail = &j->next;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return j;
}

void authq_cancel(struct authq_job *j)
{
    j->cancelled = true;
}
