/*
 * http_parse.h - a strict, bounded, incremental parser of an HTTP/1.1
 * request head (request line and header fields, RFC 9112), shared by the
 * WebSocket upgrade and the operations HTTP listener.
 *
 *   bytes so far: "GET /mqtt HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n..."
 *                  ^pos: where the previous call stopped
 *   http_parse(p, buf, len): validates buf[pos..len) one byte at a time
 *        -> HTTP_PARSE_MORE (everything so far is valid, head not ended)
 *        -> HTTP_PARSE_DONE (p->head_len bytes make the head; the rest of
 *           buf, if any, is not the parser's)
 *        -> HTTP_PARSE_ERR_* (the first byte that makes the prefix invalid
 *           or exceeds a limit decides which error)
 *
 * The result depends only on the bytes, never on how they were split
 * between calls. The parser keeps offsets, not pointers, so the caller may
 * move its buffer between calls (it must hold every byte from the first
 * one, unchanged). No allocation: header offsets go to a caller array.
 *
 * Strictness: CRLF line ends only (a bare CR or LF is an error), no
 * leading empty lines, method and header names are tokens, the target is
 * visible ASCII, the version is HTTP/1.0 or HTTP/1.1, no whitespace
 * before a header's colon, no obsolete line folding, no control bytes in
 * values (HTAB allowed). Header values are trimmed of surrounding SP/HTAB.
 */
#ifndef MQTTD_HTTP_PARSE_H
#define MQTTD_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What http_parse found. */
enum http_parse_res {
    HTTP_PARSE_DONE = 0,
    HTTP_PARSE_MORE,              /* valid so far, need more bytes */
    HTTP_PARSE_ERR_REQUEST_LINE,  /* malformed request line */
    HTTP_PARSE_ERR_METHOD,        /* method is not a token */
    HTTP_PARSE_ERR_TARGET,        /* request target not visible ASCII */
    HTTP_PARSE_ERR_VERSION,       /* malformed HTTP version */
    HTTP_PARSE_ERR_VERSION_UNSUP, /* well-formed, but not HTTP/1.0 or 1.1 */
    HTTP_PARSE_ERR_URI_TOO_LONG,  /* request line over max_line */
    HTTP_PARSE_ERR_LINE_TOO_LONG, /* a header line over max_line */
    HTTP_PARSE_ERR_TOO_MANY_HEADERS,
    HTTP_PARSE_ERR_TOO_LARGE,    /* head over max_total bytes */
    HTTP_PARSE_ERR_HEADER_NAME,  /* empty or non-token header name */
    HTTP_PARSE_ERR_HEADER_SPACE, /* whitespace before the colon */
    HTTP_PARSE_ERR_HEADER_VALUE, /* control byte in a header value */
    HTTP_PARSE_ERR_OBS_FOLD,     /* obsolete line folding */
    HTTP_PARSE_ERR_LINE_END,     /* bare CR or bare LF */
};

/* Limits, from the caller's configuration. max_line counts a line's bytes
 * without its CRLF; max_total the whole head with every CRLF. */
struct http_limits {
    size_t max_line;
    size_t max_headers;
    size_t max_total;
};

/* One header field: offsets into the caller's buffer. */
struct http_header {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
};

/*
 * The parser's state and, after HTTP_PARSE_DONE, the request. Fields are
 * public so that it lives on the stack or inside another struct (no
 * allocation); only the http_* functions below write them.
 */
struct http_parser {
    struct http_limits lim;
    struct http_header *hdrs; /* caller's array of lim.max_headers */
    size_t nhdrs;
    size_t pos;      /* bytes validated so far */
    size_t line_len; /* bytes of the current line so far */
    size_t head_len; /* after DONE: bytes of the head */
    uint32_t method_off, method_len;
    uint32_t target_off, target_len;
    int minor;               /* after DONE: 0 or 1 (HTTP/1.minor) */
    int state;               /* private */
    size_t vlen;             /* private: version bytes seen */
    size_t vtrim;            /* private: value end without trailing OWS */
    enum http_parse_res res; /* sticky result once DONE or an error */
};

/*
 * http_parser_init: a parser with the limits lim (max_total is capped at
 * UINT32_MAX) writing header offsets to hdrs, an array of lim->max_headers
 * entries that must outlive the parser's use. Never fails.
 */
void http_parser_init(struct http_parser *p, const struct http_limits *lim,
                      struct http_header *hdrs);

/*
 * http_parse: go on validating buf[p->pos..len). buf must hold the bytes
 * of every earlier call unchanged at the same offsets (it may have moved).
 * Returns HTTP_PARSE_MORE, HTTP_PARSE_DONE (p->head_len set; bytes after
 * it are not consumed) or an error; DONE and errors are sticky (later
 * calls return them again without reading). len below p->pos is treated
 * as p->pos.
 */
enum http_parse_res http_parse(struct http_parser *p, const uint8_t *buf,
                               size_t len);

/* http_parse_reason: a short static text for a result ("header line too
 * long"), for a "400 <reason>" response and the log line. */
const char *http_parse_reason(enum http_parse_res r);

/* http_parse_status: the HTTP status code a server should answer an error
 * with: 505 for an unsupported version, 414 for a request line too long,
 * 431 for header limits, 400 otherwise (0 for DONE and MORE). */
int http_parse_status(enum http_parse_res r);

/*
 * http_header_get: after DONE, the headers named name (ASCII
 * case-insensitive, NUL-terminated). Returns how many there are; when at
 * least one, *val and *vlen (either may be NULL) get the first one's value,
 * pointing into buf (not NUL-terminated).
 */
size_t http_header_get(const struct http_parser *p, const uint8_t *buf,
                       const char *name, const char **val, size_t *vlen);

/*
 * http_token_list_has: whether the comma-separated list v[0..vlen) (as in
 * Connection, Upgrade, Sec-WebSocket-Protocol) holds token (ASCII
 * case-insensitive), ignoring SP/HTAB around the elements and empty
 * elements.
 */
bool http_token_list_has(const char *v, size_t vlen, const char *token);

/* http_method_is / http_strcaseeq: the method equals m (case-sensitive, as
 * RFC 9110 says); a[0..alen) equals the NUL-terminated b, ignoring ASCII
 * case. */
bool http_method_is(const struct http_parser *p, const uint8_t *buf,
                    const char *m);
bool http_strcaseeq(const char *a, size_t alen, const char *b);

#endif
