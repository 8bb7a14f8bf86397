/*
 * acl.c - Mosquitto-compatible ACL files (see acl.h): strict loader with
 * FILE:LINE errors and the per-check matcher.
 *
 * Rules keep their filter text; the matcher walks the rule and the
 * subject (a topic name, or a filter for SUBSCRIBE) level by level,
 * substituting %c / %u in pattern rules on the fly, so a check allocates
 * nothing and never recurses. A rule's '#' can only be its last level
 * (filters are validated on load), so one pass suffices.
 */
#include "acl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"
#include "util.h"

#define ACCESS_DENY 0u

struct acl_rule {
    char *filter;
    size_t len;
    unsigned access; /* AUTH_READ | AUTH_WRITE bits; 0 = deny */
    bool pattern;
    bool uses_c, uses_u; /* pattern has a %c / %u level */
};

struct acl_list {
    struct acl_rule *r;
    size_t n, cap;
};

struct acl_user {
    char *name;
    struct acl_list rules;
};

struct acl {
    struct acl_list anon;
    struct acl_user *users; /* sorted by name after load */
    size_t nusers, cap;
    struct acl_list patterns;
};

/* What %c and %u stand for in one check. */
struct subst {
    const char *cid, *user;
    size_t cidlen, userlen;
    bool cid_ok, user_ok; /* present and free of '+', '#', '/' */
};

enum lv_kind { LV_LIT, LV_PLUS, LV_HASH, LV_NONE };

struct lv {
    const char *s;
    size_t len;
    enum lv_kind kind;
};

/*
 * rule_level: classify the rule level starting at pos; returns its end.
 * In a pattern, "%c"/"%u" become the client id / username, or '+' for a
 * deny rule when that value is unusable (fail closed), or LV_NONE for an
 * allow rule (never matches).
 */
static size_t rule_level(const char *r, size_t rlen, size_t pos, bool pattern,
                         const struct subst *sb, bool deny, struct lv *out)
{
    size_t e = topic_level_end(r, rlen, pos);
    size_t l = e - pos;

    out->s = r + pos;
    out->len = l;
    out->kind = LV_LIT;
    if (l == 1 && r[pos] == '+') {
        out->kind = LV_PLUS;
    } else if (l == 1 && r[pos] == '#') {
        out->kind = LV_HASH;
    } else if (pattern && sb != NULL && l == 2 && r[pos] == '%' &&
               (r[pos + 1] == 'c' || r[pos + 1] == 'u')) {
        bool c = r[pos + 1] == 'c';
        if (c ? sb->cid_ok : sb->user_ok) {
            out->s = c ? sb->cid : sb->user;
            out->len = c ? sb->cidlen : sb->userlen;
        } else {
            out->kind = deny ? LV_PLUS : LV_NONE;
        }
    }
    return e;
}

/*
 * walk: does rule r match topic name s (cover == false), or cover filter s
 * (cover == true)? See acl_filter_covers for the cover rules.
 */
static bool walk(const char *r, size_t rlen, bool pattern,
                 const struct subst *sb, bool deny, const char *s, size_t slen,
                 bool cover)
{
    size_t sp = 0, re;
    struct lv rl;

    re = rule_level(r, rlen, 0, pattern, sb, deny, &rl);
    /* [MQTT-4.7.2-1]: a leading wildcard never reaches '$' topics. */
    if (slen > 0 && s[0] == '$' && (rl.kind == LV_PLUS || rl.kind == LV_HASH))
        return false;
    for (;;) {
        size_t se = topic_level_end(s, slen, sp);
        size_t sl = se - sp;

        if (rl.kind == LV_HASH)
            return true;
        if (rl.kind == LV_NONE)
            return false;
        if (cover && sl == 1 && s[sp] == '#')
            return false;
        if (rl.kind == LV_LIT) {
            if (cover && sl == 1 && s[sp] == '+')
                return false;
            /* A literal spans one level, or several for a %u holding '/'
             * (acl_check_levels): it must end where a level of s ends.
             * It holds no '+' or '#', so a filter level equal to a part
             * of it is a literal too. */
            if (rl.len > slen - sp || memcmp(rl.s, s + sp, rl.len) != 0 ||
                (sp + rl.len < slen && s[sp + rl.len] != '/'))
                return false;
            se = sp + rl.len;
        }
        if (se == slen) {
            struct lv nl;
            size_t ne;
            if (re == rlen)
                return true;
            /* Subject exhausted: only a trailing "/#" still matches. */
            ne = rule_level(r, rlen, re + 1, pattern, sb, deny, &nl);
            return ne == rlen && nl.kind == LV_HASH;
        }
        if (re == rlen)
            return false;
        sp = se + 1;
        re = rule_level(r, rlen, re + 1, pattern, sb, deny, &rl);
    }
}

bool acl_filter_covers(const char *r, size_t rlen, const char *f, size_t flen)
{
    if (rlen == 0 || flen == 0)
        return false;
    return walk(r, rlen, false, NULL, false, f, flen, true);
}

/* ---- checks ---- */

static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const struct acl_user *)a)->name,
                  ((const struct acl_user *)b)->name);
}

static const struct acl_list *user_rules(const struct acl *a,
                                         const char *username)
{
    struct acl_user key, *u;

    if (username == NULL)
        return &a->anon;
    if (a->nusers == 0)
        return NULL;
    key.name = (char *)(uintptr_t)username;
    u = bsearch(&key, a->users, a->nusers, sizeof(*a->users), user_cmp);
    return u ? &u->rules : NULL;
}

static bool safe_value(const char *s)
{
    return s != NULL && strpbrk(s, "+#/") == NULL;
}

/*
 * scan: apply the rules of list l. Returns -1 when a deny rule hits,
 * 1 when an allow rule with the needed access hits, 0 otherwise.
 */
static int scan(const struct acl_list *l, const struct subst *sb, const char *t,
                size_t tlen, unsigned need, bool cover)
{
    int res = 0;

    if (l == NULL)
        return 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct acl_rule *r = &l->r[i];
        bool deny = r->access == ACCESS_DENY;

        if (r->pattern && !deny &&
            ((r->uses_c && !sb->cid_ok) || (r->uses_u && !sb->user_ok)))
            continue; /* CVE-2017-7650 */
        if (!deny && !(r->access & need))
            continue;
        if (!walk(r->filter, r->len, r->pattern, sb, deny, t, tlen, cover))
            continue;
        if (deny)
            return -1;
        res = 1;
    }
    return res;
}

bool acl_check(const struct acl *a, const char *client_id, const char *username,
               const char *topic, size_t topic_len, enum auth_access access)
{
    return acl_check_levels(a, client_id, username, false, topic, topic_len,
                            access);
}

bool acl_check_levels(const struct acl *a, const char *client_id,
                      const char *username, bool user_levels, const char *topic,
                      size_t topic_len, enum auth_access access)
{
    struct subst sb;
    unsigned need;
    bool cover = access == AUTH_SUBSCRIBE;
    int r1, r2;

    if (a == NULL)
        return true;
    if (cover) {
        const char *g, *inner;
        size_t gl, il;
        int sh = topic_share_parse(topic, topic_len, &g, &gl, &inner, &il);
        if (sh < 0)
            return false;
        if (sh > 0) {
            topic = inner;
            topic_len = il;
        }
        need = AUTH_READ;
    } else if (access == AUTH_READ || access == AUTH_WRITE) {
        need = (unsigned)access;
    } else {
        return false;
    }
    if (topic_len == 0)
        return false;
    memset(&sb, 0, sizeof(sb));
    sb.cid = client_id;
    sb.cidlen = client_id ? strlen(client_id) : 0;
    sb.cid_ok = safe_value(client_id);
    sb.user = username;
    sb.userlen = username ? strlen(username) : 0;
    sb.user_ok = user_levels
                     ? username != NULL && strpbrk(username, "+#") == NULL
                     : safe_value(username);

    r1 = scan(user_rules(a, username), &sb, topic, topic_len, need, cover);
    if (r1 < 0)
        return false;
    r2 = scan(&a->patterns, &sb, topic, topic_len, need, cover);
    if (r2 < 0)
        return false;
    return r1 > 0 || r2 > 0;
}

/* ---- loading ---- */

static void list_push(struct acl_list *l, const struct acl_rule *r)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->r = xreallocarray(l->r, l->cap, sizeof(*l->r));
    }
    l->r[l->n++] = *r;
}

static void list_free(struct acl_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->r[i].filter);
    free(l->r);
}

void acl_free(struct acl *a)
{
    if (a == NULL)
        return;
    list_free(&a->anon);
    list_free(&a->patterns);
    for (size_t i = 0; i < a->nusers; i++) {
        free(a->users[i].name);
        list_free(&a->users[i].rules);
    }
    free(a->users);
    free(a);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Parser state: the list "topic" rules currently go to. */
struct parse_state {
    struct acl *a;
    long cur; /* index into a->users, -1 = anonymous */
};

static int parse_rule(struct parse_state *ps, bool pattern, const char *s,
                      size_t len, const char **why)
{
    struct acl_rule r;
    const char *tok = s, *rest;
    size_t tl = 0, rl;

    memset(&r, 0, sizeof(r));
    while (tl < len && !is_blank(tok[tl]))
        tl++;
    rest = tok + tl;
    rl = len - tl;
    while (rl > 0 && is_blank(*rest)) {
        rest++;
        rl--;
    }
    if (tl == 0) {
        *why = "empty topic";
        return -1;
    }
    if (rl == 0) {
        /* "topic FILTER": read and write */
        r.access = AUTH_READ | AUTH_WRITE;
        rest = tok;
        rl = tl;
    } else if (tl == 4 && memcmp(tok, "read", 4) == 0) {
        r.access = AUTH_READ;
    } else if (tl == 5 && memcmp(tok, "write", 5) == 0) {
        r.access = AUTH_WRITE;
    } else if (tl == 9 && memcmp(tok, "readwrite", 9) == 0) {
        r.access = AUTH_READ | AUTH_WRITE;
    } else if (tl == 4 && memcmp(tok, "deny", 4) == 0) {
        r.access = ACCESS_DENY;
    } else {
        *why = "invalid access type (expected read, write, readwrite or "
               "deny)";
        return -1;
    }
    if (rl > 65535 || !topic_filter_valid(rest, rl)) {
        *why = "invalid topic filter";
        return -1;
    }
    if (!util_utf8_valid(rest, rl)) {
        *why = "topic filter is not valid UTF-8";
        return -1;
    }
    r.pattern = pattern;
    if (pattern) {
        for (size_t p = 0; p <= rl;) {
            size_t e = topic_level_end(rest, rl, p);
            const char *lv = rest + p;
            size_t ll = e - p;
            if (ll == 2 && lv[0] == '%' && lv[1] == 'c') {
                r.uses_c = true;
            } else if (ll == 2 && lv[0] == '%' && lv[1] == 'u') {
                r.uses_u = true;
            } else {
                for (size_t k = 0; k + 1 < ll; k++) {
                    if (lv[k] == '%' &&
                        (lv[k + 1] == 'c' || lv[k + 1] == 'u')) {
                        *why = "%c and %u must be a whole topic level";
                        return -1;
                    }
                }
            }
            p = e + 1;
        }
    }
    r.filter = xstrndup(rest, rl);
    r.len = rl;
    if (pattern)
        list_push(&ps->a->patterns, &r);
    else if (ps->cur < 0)
        list_push(&ps->a->anon, &r);
    else
        list_push(&ps->a->users[ps->cur].rules, &r);
    return 0;
}

static int parse_line(struct parse_state *ps, const char *s, size_t len,
                      const char **why)
{
    size_t i = 0, kl;
    const char *kw, *rest;

    while (len > 0 && (is_blank(s[len - 1]) || s[len - 1] == '\r'))
        len--;
    while (i < len && is_blank(s[i]))
        i++;
    if (i == len || s[i] == '#')
        return 0;
    kw = s + i;
    kl = 0;
    while (i + kl < len && !is_blank(kw[kl]))
        kl++;
    rest = kw + kl;
    len -= i + kl;
    while (len > 0 && is_blank(*rest)) {
        rest++;
        len--;
    }
    if (kl == 4 && memcmp(kw, "user", 4) == 0) {
        struct acl *a = ps->a;
        if (len == 0) {
            *why = "user with no name";
            return -1;
        }
        if (len > 65535 || !util_utf8_valid(rest, len)) {
            *why = "username is not valid UTF-8";
            return -1;
        }
        if (a->nusers == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 8;
            a->users = xreallocarray(a->users, a->cap, sizeof(*a->users));
        }
        memset(&a->users[a->nusers], 0, sizeof(*a->users));
        a->users[a->nusers].name = xstrndup(rest, len);
        ps->cur = (long)a->nusers++;
        return 0;
    }
    if (kl == 5 && memcmp(kw, "topic", 5) == 0)
        return parse_rule(ps, false, rest, len, why);
    if (kl == 7 && memcmp(kw, "pattern", 7) == 0)
        return parse_rule(ps, true, rest, len, why);
    *why = "unknown keyword (expected user, topic or pattern)";
    return -1;
}

/* merge_users: sort sections by name and merge repeated ones, so a user
 * may have several "user" sections as in Mosquitto. */
static void merge_users(struct acl *a)
{
    size_t o = 0;

    if (a->nusers == 0)
        return;
    qsort(a->users, a->nusers, sizeof(*a->users), user_cmp);
    for (size_t i = 1; i < a->nusers; i++) {
        struct acl_user *dst = &a->users[o], *src = &a->users[i];
        if (strcmp(dst->name, src->name) == 0) {
            for (size_t k = 0; k < src->rules.n; k++)
                list_push(&dst->rules, &src->rules.r[k]);
            free(src->rules.r);
            free(src->name);
        } else {
            a->users[++o] = *src;
        }
    }
    a->nusers = o + 1;
}

/* parse_line_cb: util_line_fn over parse_line. */
static int parse_line_cb(void *ud, const char *s, size_t len, const char **why)
{
    return parse_line(ud, s, len, why);
}

/* parse_finish: the loaded ACL (rc 0), or NULL after freeing it. */
static struct acl *parse_finish(struct parse_state *ps, int rc)
{
    if (rc == -1) {
        acl_free(ps->a);
        return NULL;
    }
    merge_users(ps->a);
    return ps->a;
}

struct acl *acl_parse(const char *name, const char *buf, size_t len, char *err,
                      size_t errlen)
{
    struct parse_state ps;

    ps.a = xcalloc(1, sizeof(*ps.a));
    ps.cur = -1;
    return parse_finish(&ps, util_parse_lines(name, buf, len, ACL_MAX_FILE,
                                              ACL_MAX_LINE, parse_line_cb, &ps,
                                              err, errlen));
}

struct acl *acl_load(const char *path, char *err, size_t errlen)
{
    struct parse_state ps;

    ps.a = xcalloc(1, sizeof(*ps.a));
    ps.cur = -1;
    return parse_finish(&ps, util_read_lines(path, ACL_MAX_FILE, ACL_MAX_LINE,
                                             parse_line_cb, &ps, err, errlen));
}
