/*
 * log.c - the broker's logger: level filter, several destinations at once,
 * strftime or Unix timestamps, text or JSON lines (cJSON), rate limiting.
 */
/* syslog.h's LOG_ERR... macros clash with our level names: take the
 * priorities first, then drop the macros before including log.h. */
#include <syslog.h>
static const int LOG_ERR_PRIO = LOG_ERR;
static const int LOG_WARNING_PRIO = LOG_WARNING;
static const int LOG_NOTICE_PRIO = LOG_NOTICE;
static const int LOG_INFO_PRIO = LOG_INFO;
static const int LOG_DEBUG_PRIO = LOG_DEBUG;
#undef LOG_ERR
#undef LOG_WARNING
#undef LOG_NOTICE
#undef LOG_INFO
#undef LOG_DEBUG

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "util.h"

struct log {
    unsigned types;
    unsigned dests;
    bool timestamp;
    bool json;
    char *ts_format;
    char *file_path;
    FILE *file;
    bool syslog_open;
};

struct log *log_new(void)
{
    struct log *lg = xcalloc(1, sizeof(*lg));

    lg->types = LOG_DEFAULT_TYPES;
    lg->dests = LOGD_STDERR;
    lg->timestamp = true;
    return lg;
}

void log_free(struct log *lg)
{
    if (lg == NULL)
        return;
    if (lg->file)
        fclose(lg->file);
    if (lg->syslog_open)
        closelog();
    free(lg->ts_format);
    free(lg->file_path);
    free(lg);
}

int log_configure(struct log *lg, const struct log_settings *s, char *err,
                  size_t errlen)
{
    FILE *f = NULL;

    if ((s->dests & LOGD_FILE) && s->file) {
        f = fopen(s->file, "ae");
        if (f == NULL) {
            snprintf(err, errlen, "cannot open log file '%s': %s", s->file,
                     strerror(errno));
            return -1;
        }
        setvbuf(f, NULL, _IOLBF, 0);
    }
    if (lg->file)
        fclose(lg->file);
    lg->file = f;
    free(lg->file_path);
    lg->file_path = s->file ? xstrdup(s->file) : NULL;
    free(lg->ts_format);
    lg->ts_format = s->ts_format ? xstrdup(s->ts_format) : NULL;
    lg->types = s->types;
    lg->dests = s->dests;
    lg->timestamp = s->timestamp;
    lg->json = s->json;
    if ((lg->dests & LOGD_SYSLOG) && !lg->syslog_open) {
        openlog("mqttd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        lg->syslog_open = true;
    }
    return 0;
}

int log_reopen(struct log *lg, char *err, size_t errlen)
{
    FILE *f;

    if (!(lg->dests & LOGD_FILE) || lg->file_path == NULL)
        return 0;
    f = fopen(lg->file_path, "ae");
    if (f == NULL) {
        snprintf(err, errlen, "cannot reopen log file '%s': %s", lg->file_path,
                 strerror(errno));
        return -1;
    }
    setvbuf(f, NULL, _IOLBF, 0);
    if (lg->file)
        fclose(lg->file);
    lg->file = f;
    return 0;
}

bool log_enabled(const struct log *lg, unsigned level)
{
    return lg != NULL && (lg->types & level) != 0 && lg->dests != 0;
}

static const char *level_name(unsigned level)
{
    switch (level) {
    case LOG_ERR:
        return "error";
    case LOG_WARNING:
        return "warning";
    case LOG_NOTICE:
        return "notice";
    case LOG_INFO:
        return "info";
    case LOG_DEBUG:
        return "debug";
    case LOG_SUBSCRIBE:
        return "subscribe";
    case LOG_UNSUBSCRIBE:
        return "unsubscribe";
    default:
        return "info";
    }
}

static int syslog_prio(unsigned level)
{
    switch (level) {
    case LOG_ERR:
        return LOG_ERR_PRIO;
    case LOG_WARNING:
        return LOG_WARNING_PRIO;
    case LOG_NOTICE:
        return LOG_NOTICE_PRIO;
    case LOG_DEBUG:
        return LOG_DEBUG_PRIO;
    default:
        return LOG_INFO_PRIO;
    }
}

static void emit(struct log *lg, unsigned level, const char *line)
{
    if (lg->dests & LOGD_STDERR)
        fprintf(stderr, "%s\n", line);
    if (lg->dests & LOGD_STDOUT) {
        fprintf(stdout, "%s\n", line);
        fflush(stdout);
    }
    if ((lg->dests & LOGD_FILE) && lg->file)
        fprintf(lg->file, "%s\n", line);
    if (lg->dests & LOGD_SYSLOG)
        syslog(syslog_prio(level), "%s", line);
}

static void timestamp(const struct log *lg, char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;

    out[0] = '\0';
    if (!lg->timestamp)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (lg->ts_format) {
        localtime_r(&ts.tv_sec, &tm);
        if (strftime(out, outlen - 2, lg->ts_format, &tm) == 0)
            out[0] = '\0';
        strcat(out, ": ");
    } else {
        snprintf(out, outlen, "%lld: ", (long long)ts.tv_sec);
    }
}

static void emit_json(struct log *lg, unsigned level, const char *event,
                      const char *text, va_list kv)
{
    cJSON *o = cJSON_CreateObject();
    struct timespec ts;
    char *s;
    const char *k;

    clock_gettime(CLOCK_REALTIME, &ts);
    cJSON_AddNumberToObject(o, "ts",
                            (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    cJSON_AddStringToObject(o, "level", level_name(level));
    if (event)
        cJSON_AddStringToObject(o, "event", event);
    cJSON_AddStringToObject(o, "msg", text);
    while ((k = va_arg(kv, const char *)) != NULL) {
        const char *v = va_arg(kv, const char *);
        cJSON_AddStringToObject(o, k, v ? v : "");
    }
    s = cJSON_PrintUnformatted(o);
    if (s) {
        emit(lg, level, s);
        cJSON_free(s);
    }
    cJSON_Delete(o);
}

/* Empty va_list stand-in for log_vmsg in JSON mode. */
static void json_plain(struct log *lg, unsigned level, const char *text, ...)
{
    va_list ap;

    va_start(ap, text);
    emit_json(lg, level, NULL, text, ap);
    va_end(ap);
}

void log_vmsg(struct log *lg, unsigned level, const char *fmt, va_list ap)
{
    char msg[2048], ts[96], line[2200];

    if (!log_enabled(lg, level))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (lg->json) {
        json_plain(lg, level, msg, (const char *)NULL);
        return;
    }
    timestamp(lg, ts, sizeof(ts));
    snprintf(line, sizeof(line), "%s%s", ts, msg);
    emit(lg, level, line);
}

void log_msg(struct log *lg, unsigned level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(lg, level, fmt, ap);
    va_end(ap);
}

/* Quote a value for a text key=value line when it holds spaces or quotes. */
static size_t put_value(char *out, size_t cap, const char *v)
{
    size_t n = 0;
    bool quote = v[0] == '\0' || strpbrk(v, " \"=\t") != NULL;

    if (quote && n < cap)
        out[n++] = '"';
    for (; *v && n + 2 < cap; v++) {
        if (*v == '"' || *v == '\\')
            out[n++] = '\\';
        out[n++] = (char)((unsigned char)*v < 0x20 ? '?' : *v);
    }
    if (quote && n < cap)
        out[n++] = '"';
    return n;
}

void log_event(struct log *lg, unsigned level, const char *event,
               const char *text, ...)
{
    va_list ap;
    char line[2600], ts[96];
    size_t n;
    const char *k;

    if (!log_enabled(lg, level))
        return;
    va_start(ap, text);
    if (lg->json) {
        emit_json(lg, level, event, text, ap);
        va_end(ap);
        return;
    }
    timestamp(lg, ts, sizeof(ts));
    n = (size_t)snprintf(line, sizeof(line), "%s%s", ts, text);
    while (n < sizeof(line) - 4 && (k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=", k);
        if (n >= sizeof(line) - 4)
            break;
        n += put_value(line + n, sizeof(line) - 1 - n, v ? v : "");
    }
    va_end(ap);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    line[n] = '\0';
    emit(lg, level, line);
}

bool log_ratelimit_ok(struct log_ratelimit *rl, unsigned burst, double period,
                      unsigned *suppressed)
{
    double now = util_now_mono();

    if (now - rl->window_start >= period) {
        rl->window_start = now;
        rl->count = 0;
    }
    if (rl->count < burst) {
        rl->count++;
        *suppressed = rl->suppressed;
        rl->suppressed = 0;
        return true;
    }
    rl->suppressed++;
    return false;
}
