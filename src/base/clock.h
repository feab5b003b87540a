/*
 * clock.h - the two clocks ferrymq uses.
 */
#ifndef FM_BASE_CLOCK_H
#define FM_BASE_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Wall clock, epoch milliseconds: timestamps that clients see. */
int64_t fm_now_ms(void);
/* Monotonic milliseconds: deadlines and intervals. */
int64_t fm_mono_ms(void);
/* Fill *ts with CLOCK_MONOTONIC now + ms (for pthread_cond_timedwait on
 * a condition variable created with fm_cond_init_monotonic). */
void fm_deadline_ts(struct timespec *ts, int64_t ms);

/* Initialise a condition variable that waits on CLOCK_MONOTONIC. */
void fm_cond_init_monotonic(pthread_cond_t *cond);

#endif
