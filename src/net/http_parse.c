/*
 * http_parse.c - strict, bounded, incremental HTTP/1.1 request-head parser
 * (see http_parse.h). A state machine over single bytes: each call goes on
 * from the byte where the previous one stopped, so a head that arrives a
 * byte at a time costs no more than one that arrives whole, and the first
 * offending byte decides the error whatever the split. No allocation, no
 * recursion, offsets instead of pointers.
 */
#include "http_parse.h"

#include <string.h>

enum {
    S_METHOD = 0,
    S_TARGET,
    S_VERSION,
    S_RL_LF,     /* CR of the request line seen */
    S_HDR_START, /* start of a header line (or of the final CRLF) */
    S_HDR_NAME,
    S_HDR_OWS, /* after the colon, before the value */
    S_HDR_VALUE,
    S_HDR_LF, /* CR of a header line seen */
    S_END_LF, /* CR of the empty line seen */
    S_STOP,   /* DONE or an error: p->res */
};

#define HTTP_VERSION_PREFIX "HTTP/"

/* tchar (RFC 9110 5.6.2): "!#$%&'*+-.^_`|~", DIGIT, ALPHA. */
static bool is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar: VCHAR or obs-text. */
static bool is_vchar(uint8_t c)
{
    return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

static uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
}

void http_parser_init(struct http_parser *p, const struct http_limits *lim,
                      struct http_header *hdrs)
{
    memset(p, 0, sizeof(*p));
    p->lim = *lim;
    if (p->lim.max_total > UINT32_MAX)
        p->lim.max_total = UINT32_MAX;
    p->hdrs = hdrs;
    p->state = S_METHOD;
    p->res = HTTP_PARSE_MORE;
}

/* stop: make r the sticky result. */
static enum http_parse_res stop(struct http_parser *p, enum http_parse_res r)
{
    p->state = S_STOP;
    p->res = r;
    return r;
}

/* version_byte: the vlen-th byte of "HTTP/D.D" is c. */
static bool version_byte(size_t vlen, uint8_t c)
{
    if (vlen < sizeof(HTTP_VERSION_PREFIX) - 1)
        return c == (uint8_t)HTTP_VERSION_PREFIX[vlen];
    if (vlen == 5 || vlen == 7)
        return c >= '0' && c <= '9';
    return vlen == 6 && c == '.';
}

enum http_parse_res http_parse(struct http_parser *p, const uint8_t *buf,
                               size_t len)
{
    bool rl;
    size_t pos;

    if (p->state == S_STOP)
        return p->res;
    for (pos = p->pos; pos < len; pos++) {
        uint8_t c = buf[pos];
        bool content = true; /* counts toward the line length */

        p->pos = pos + 1;
        if (pos >= p->lim.max_total)
            return stop(p, HTTP_PARSE_ERR_TOO_LARGE);
        rl = p->state <= S_RL_LF;
        switch (p->state) {
        case S_METHOD:
            if (c == ' ' && p->method_len > 0) {
                p->state = S_TARGET;
            } else if (is_tchar(c)) {
                if (p->method_len++ == 0)
                    p->method_off = (uint32_t)pos;
            } else if (c == ' ' || c == '\r' || c == '\n') {
                return stop(p, HTTP_PARSE_ERR_REQUEST_LINE);
            } else {
                return stop(p, HTTP_PARSE_ERR_METHOD);
            }
            break;
        case S_TARGET:
            if (c == ' ' && p->target_len > 0) {
                p->state = S_VERSION;
            } else if (c >= 0x21 && c <= 0x7e) {
                if (p->target_len++ == 0)
                    p->target_off = (uint32_t)pos;
            } else if (c == ' ' || c == '\r' || c == '\n') {
                return stop(p, HTTP_PARSE_ERR_REQUEST_LINE);
            } else {
                return stop(p, HTTP_PARSE_ERR_TARGET);
            }
            break;
        case S_VERSION:
            if (c == '\r' && p->vlen == 8) {
                uint8_t major = buf[pos - 3], minor = buf[pos - 1];

                if (major != '1' || (minor != '0' && minor != '1'))
                    return stop(p, HTTP_PARSE_ERR_VERSION_UNSUP);
                p->minor = minor - '0';
                p->state = S_RL_LF;
                content = false;
            } else if (c == '\n') {
                return stop(p, HTTP_PARSE_ERR_LINE_END);
            } else if (p->vlen < 8 && version_byte(p->vlen, c)) {
                p->vlen++;
            } else {
                return stop(p, HTTP_PARSE_ERR_VERSION);
            }
            break;
        case S_RL_LF:
        case S_HDR_LF:
            if (c != '\n')
                return stop(p, HTTP_PARSE_ERR_LINE_END);
            p->state = S_HDR_START;
            p->line_len = 0;
            content = false;
            break;
        case S_HDR_START:
            if (c == '\r') {
                p->state = S_END_LF;
                content = false;
            } else if (is_tchar(c)) {
                struct http_header *h;

                if (p->nhdrs >= p->lim.max_headers)
                    return stop(p, HTTP_PARSE_ERR_TOO_MANY_HEADERS);
                h = &p->hdrs[p->nhdrs];
                h->name_off = (uint32_t)pos;
                h->name_len = 1;
                h->value_off = 0;
                h->value_len = 0;
                p->state = S_HDR_NAME;
            } else if (c == ' ' || c == '\t') {
                return stop(p, HTTP_PARSE_ERR_OBS_FOLD);
            } else if (c == '\n') {
                return stop(p, HTTP_PARSE_ERR_LINE_END);
            } else {
                return stop(p, HTTP_PARSE_ERR_HEADER_NAME);
            }
            break;
        case S_HDR_NAME:
            if (is_tchar(c)) {
                p->hdrs[p->nhdrs].name_len++;
            } else if (c == ':') {
                p->state = S_HDR_OWS;
            } else if (c == ' ' || c == '\t') {
                return stop(p, HTTP_PARSE_ERR_HEADER_SPACE);
            } else {
                return stop(p, HTTP_PARSE_ERR_HEADER_NAME);
            }
            break;
        case S_HDR_OWS:
        case S_HDR_VALUE: {
            struct http_header *h = &p->hdrs[p->nhdrs];

            if (c == ' ' || c == '\t') {
                break;
            } else if (is_vchar(c)) {
                if (p->state == S_HDR_OWS) {
                    h->value_off = (uint32_t)pos;
                    p->state = S_HDR_VALUE;
                }
                p->vtrim = pos + 1;
            } else if (c == '\r') {
                if (p->state == S_HDR_OWS)
                    h->value_off = (uint32_t)pos;
                else
                    h->value_len = (uint32_t)(p->vtrim - h->value_off);
                p->nhdrs++;
                p->state = S_HDR_LF;
                content = false;
            } else if (c == '\n') {
                return stop(p, HTTP_PARSE_ERR_LINE_END);
            } else {
                return stop(p, HTTP_PARSE_ERR_HEADER_VALUE);
            }
            break;
        }
        case S_END_LF:
            if (c != '\n')
                return stop(p, HTTP_PARSE_ERR_LINE_END);
            p->head_len = pos + 1;
            return stop(p, HTTP_PARSE_DONE);
        default:
            return stop(p, HTTP_PARSE_ERR_REQUEST_LINE);
        }
        if (content && ++p->line_len > p->lim.max_line)
            return stop(p, rl ? HTTP_PARSE_ERR_URI_TOO_LONG
                              : HTTP_PARSE_ERR_LINE_TOO_LONG);
    }
    return HTTP_PARSE_MORE;
}

const char *http_parse_reason(enum http_parse_res r)
{
    switch (r) {
    case HTTP_PARSE_DONE:
        return "complete";
    case HTTP_PARSE_MORE:
        return "incomplete";
    case HTTP_PARSE_ERR_REQUEST_LINE:
        return "malformed request line";
    case HTTP_PARSE_ERR_METHOD:
        return "bad method";
    case HTTP_PARSE_ERR_TARGET:
        return "bad request target";
    case HTTP_PARSE_ERR_VERSION:
        return "malformed HTTP version";
    case HTTP_PARSE_ERR_VERSION_UNSUP:
        return "HTTP version not supported";
    case HTTP_PARSE_ERR_URI_TOO_LONG:
        return "request line too long";
    case HTTP_PARSE_ERR_LINE_TOO_LONG:
        return "header line too long";
    case HTTP_PARSE_ERR_TOO_MANY_HEADERS:
        return "too many header fields";
    case HTTP_PARSE_ERR_TOO_LARGE:
        return "request head too large";
    case HTTP_PARSE_ERR_HEADER_NAME:
        return "malformed header field name";
    case HTTP_PARSE_ERR_HEADER_SPACE:
        return "whitespace before header colon";
    case HTTP_PARSE_ERR_HEADER_VALUE:
        return "control character in header value";
    case HTTP_PARSE_ERR_OBS_FOLD:
        return "obsolete header line folding";
    case HTTP_PARSE_ERR_LINE_END:
        return "bare CR or LF";
    }
    return "unknown";
}

int http_parse_status(enum http_parse_res r)
{
    switch (r) {
    case HTTP_PARSE_DONE:
    case HTTP_PARSE_MORE:
        return 0;
    case HTTP_PARSE_ERR_VERSION_UNSUP:
        return 505;
    case HTTP_PARSE_ERR_URI_TOO_LONG:
        return 414;
    case HTTP_PARSE_ERR_LINE_TOO_LONG:
    case HTTP_PARSE_ERR_TOO_MANY_HEADERS:
    case HTTP_PARSE_ERR_TOO_LARGE:
        return 431;
    default:
        return 400;
    }
}

bool http_strcaseeq(const char *a, size_t alen, const char *b)
{
    size_t i;

    for (i = 0; i < alen; i++) {
        if (b[i] == '\0' || lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
            return false;
    }
    return b[i] == '\0';
}

size_t http_header_get(const struct http_parser *p, const uint8_t *buf,
                       const char *name, const char **val, size_t *vlen)
{
    size_t n = 0;

    if (p->res != HTTP_PARSE_DONE)
        return 0;
    for (size_t i = 0; i < p->nhdrs; i++) {
        const struct http_header *h = &p->hdrs[i];

        if (!http_strcaseeq((const char *)buf + h->name_off, h->name_len, name))
            continue;
        if (n++ == 0) {
            if (val != NULL)
                *val = (const char *)buf + h->value_off;
            if (vlen != NULL)
                *vlen = h->value_len;
        }
    }
    return n;
}

bool http_token_list_has(const char *v, size_t vlen, const char *token)
{
    size_t i = 0;

    while (i < vlen) {
        size_t start, end;

        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        start = i;
        while (i < vlen && v[i] != ',')
            i++;
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end > start && http_strcaseeq(v + start, end - start, token))
            return true;
    }
    return false;
}

bool http_method_is(const struct http_parser *p, const uint8_t *buf,
                    const char *m)
{
    size_t n = strlen(m);

    return p->res == HTTP_PARSE_DONE && p->method_len == n &&
           memcmp(buf + p->method_off, m, n) == 0;
}
