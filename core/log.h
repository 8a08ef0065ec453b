/*
 * log.h: leveled log lines on stderr, prefixed "randlora: ".
 *
 * RANDLORA_LOG=quiet|info|debug (default info) or log_set_level().
 *     log_info("loaded %s: %zu tensors", path, n);
 */
#ifndef RANDLORA_CORE_LOG_H
#define RANDLORA_CORE_LOG_H

enum log_level {
    LOG_LEVEL_QUIET = 0,  /* warnings and errors only */
    LOG_LEVEL_INFO  = 1,
    LOG_LEVEL_DEBUG = 2,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_warn(const char *fmt, ...)  __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...)  __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* RANDLORA_CORE_LOG_H */
