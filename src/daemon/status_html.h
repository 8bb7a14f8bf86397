/*
 * status_html.h - the status page (src/daemon/www/status.html), built into
 * the binary: CMake (cmake/embed.cmake) turns the file into a C array at
 * build time, so the page is never a hand-maintained C string.
 */
#ifndef MQTTD_STATUS_HTML_H
#define MQTTD_STATUS_HTML_H

#include <stddef.h>

extern const unsigned char status_html[];
extern const size_t status_html_len;

#endif
