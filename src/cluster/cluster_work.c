/*
 * cluster_work.c - blocking NATS calls off the event loop (cluster_work.h).
 */
#include "cluster_work.h"

#include <ev.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util.h"

struct job {
    struct job *next;
    void (*work)(void *arg);
    void (*done)(void *arg);
    void *arg;
};

struct queue {
    struct job *head, *tail;
};

struct cluster_work {
    struct ev_loop *loop;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct queue todo, done; /* under mu */
    bool stop;               /* under mu */
    ev_async wake;
};

static void push(struct queue *q, struct job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
}

static struct job *take_all(struct queue *q)
{
    struct job *j = q->head;

    q->head = q->tail = NULL;
    return j;
}

static void *worker(void *p)
{
    struct cluster_work *w = p;
    struct job *j;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->todo.head == NULL && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->todo.head == NULL)
            break; /* stop, and nothing left */
        j = w->todo.head;
        w->todo.head = j->next;
        if (w->todo.head == NULL)
            w->todo.tail = NULL;
        pthread_mutex_unlock(&w->mu);
        if (j->work)
            j->work(j->arg);
        pthread_mutex_lock(&w->mu);
        push(&w->done, j);
        ev_async_send(w->loop, &w->wake);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void run_done(struct cluster_work *w)
{
    struct job *j, *next;

    pthread_mutex_lock(&w->mu);
    j = take_all(&w->done);
    pthread_mutex_unlock(&w->mu);
    for (; j; j = next) {
        next = j->next;
        if (j->done)
            j->done(j->arg);
        free(j);
    }
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    run_done(a->data);
}

struct cluster_work *cluster_work_new(struct ev_loop *loop)
{
    struct cluster_work *w = xcalloc(1, sizeof(*w));
    sigset_t all, old;

    w->loop = loop;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    ev_async_init(&w->wake, wake_cb);
    w->wake.data = w;
    ev_async_start(loop, &w->wake);
    ev_unref(loop); /* does not keep the loop alive */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (pthread_create(&w->thread, NULL, worker, w) != 0)
        abort();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return w;
}

void cluster_work_submit(struct cluster_work *w, void (*work)(void *arg),
                         void (*done)(void *arg), void *arg)
{
    struct job *j = xcalloc(1, sizeof(*j));

    j->work = work;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&w->mu);
    push(&w->todo, j);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void cluster_work_free(struct cluster_work *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    run_done(w);
    ev_ref(w->loop);
    ev_async_stop(w->loop, &w->wake);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
