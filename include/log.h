/*
 * log.h - the broker's logger: levels (Mosquitto's log_type names),
 * destinations (stderr, stdout, syslog, file; several at once), timestamps,
 * text or JSON lines. A logger is an object owned by the broker; there is no
 * global logger. Check the level before formatting: use the LOG_* macros.
 */
#ifndef MQTTD_LOG_H
#define MQTTD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Level bits, matching Mosquitto's log_type names. */
enum log_level {
    LOG_ERR = 1u << 0,       /* "error" */
    LOG_WARNING = 1u << 1,   /* "warning" */
    LOG_NOTICE = 1u << 2,    /* "notice" */
    LOG_INFO = 1u << 3,      /* "information" */
    LOG_DEBUG = 1u << 4,     /* "debug" */
    LOG_SUBSCRIBE = 1u << 5, /* "subscribe" */
    LOG_UNSUBSCRIBE = 1u << 6,
    LOG_WEBSOCKETS = 1u << 7,
};
#define LOG_ALL 0xffu
/* Mosquitto's default: error, warning, notice, information. */
#define LOG_DEFAULT_TYPES (LOG_ERR | LOG_WARNING | LOG_NOTICE | LOG_INFO)

/* Destination bits (log_dest). */
enum log_dest {
    LOGD_STDERR = 1u << 0,
    LOGD_STDOUT = 1u << 1,
    LOGD_SYSLOG = 1u << 2,
    LOGD_FILE = 1u << 3,
    LOGD_NONE = 0,
};

struct log_settings {
    unsigned types;  /* enum log_level bits */
    unsigned dests;  /* enum log_dest bits */
    char *file;      /* for LOGD_FILE, owned by the settings owner */
    bool timestamp;  /* log_timestamp */
    char *ts_format; /* strftime format, NULL = Unix time "%ld:" */
    bool json;       /* log_format json */
};

struct log;

/* log_new: a logger writing to stderr with default types until configured.
 * Never returns NULL. */
struct log *log_new(void);

/* log_free: close files/syslog and free. Accepts NULL. */
void log_free(struct log *lg);

/*
 * log_configure: apply settings (copied). Opens the log file in append mode;
 * on failure keeps the previous destinations, returns -1 and fills err.
 * Called at start-up and on SIGHUP (which also reopens the file for
 * logrotate).
 */
int log_configure(struct log *lg, const struct log_settings *s, char *err,
                  size_t errlen);

/*
 * log_reopen: close and reopen the log file (append mode) with the current
 * settings, for logrotate; a SIGHUP whose reload fails still does this.
 * Returns 0 (also when no file is configured) or -1 with err filled, the
 * old file still in use.
 */
int log_reopen(struct log *lg, char *err, size_t errlen);

/* log_enabled: true when messages of 'level' are written. */
bool log_enabled(const struct log *lg, unsigned level);

/* log_msg: format and write one line at 'level'. */
void log_msg(struct log *lg, unsigned level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(struct log *lg, unsigned level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * log_event: one structured event. 'event' is a short stable name
 * ("auth_failed", "client_connected", ...); the remaining arguments are
 * key/value string pairs terminated by NULL. In text mode the line is
 * "MSG key=value ..." where MSG is the formatted 'text' argument; in JSON
 * mode it is one object {"ts":..,"level":..,"event":..,"msg":..,key:value}.
 */
void log_event(struct log *lg, unsigned level, const char *event,
               const char *text, ...) __attribute__((sentinel));

#define LOGF(lg, lvl, ...)                                                     \
    do {                                                                       \
        if (log_enabled((lg), (lvl)))                                          \
            log_msg((lg), (lvl), __VA_ARGS__);                                 \
    } while (0)
#define LOG_E(lg, ...) LOGF(lg, LOG_ERR, __VA_ARGS__)
#define LOG_W(lg, ...) LOGF(lg, LOG_WARNING, __VA_ARGS__)
#define LOG_N(lg, ...) LOGF(lg, LOG_NOTICE, __VA_ARGS__)
#define LOG_I(lg, ...) LOGF(lg, LOG_INFO, __VA_ARGS__)
#define LOG_D(lg, ...) LOGF(lg, LOG_DEBUG, __VA_ARGS__)

/*
 * log_ratelimit: token bucket for noisy events (TLS failures, limit hits).
 * Returns true when this event may be logged now; at most 'burst' per
 * 'period' seconds. 'suppressed' counts events refused since the last
 * allowed one, so callers can report "(N similar suppressed)".
 */
struct log_ratelimit {
    double window_start;
    unsigned count;
    unsigned suppressed;
};
bool log_ratelimit_ok(struct log_ratelimit *rl, unsigned burst, double period,
                      unsigned *suppressed);

#endif
