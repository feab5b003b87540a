/*
 * log.h - leveled logging to stderr, one line per call, thread-safe.
 */
#ifndef FM_BASE_LOG_H
#define FM_BASE_LOG_H

enum fm_log_level { FM_LOG_ERROR, FM_LOG_WARN, FM_LOG_INFO, FM_LOG_DEBUG };

/* Messages above this level are dropped. Default FM_LOG_INFO. */
void fm_log_set_level(enum fm_log_level level);
void fm_log(enum fm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define fm_error(...) fm_log(FM_LOG_ERROR, __VA_ARGS__)
#define fm_warn(...) fm_log(FM_LOG_WARN, __VA_ARGS__)
#define fm_info(...) fm_log(FM_LOG_INFO, __VA_ARGS__)
#define fm_debug(...) fm_log(FM_LOG_DEBUG, __VA_ARGS__)

#endif
