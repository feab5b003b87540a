/*
 * h_groups.h - the consumer group handlers (h_groups.c) for the route
 * table in server.c. fm_h_group_list is declared in http.h.
 */
#ifndef FM_HTTP_H_GROUPS_H
#define FM_HTTP_H_GROUPS_H

#include "http/http.h"

int fm_h_group_receive(struct fm_req *r);
int fm_h_group_ack(struct fm_req *r);
int fm_h_group_nack(struct fm_req *r);
int fm_h_group_get(struct fm_req *r);
int fm_h_group_reset(struct fm_req *r);

#endif
