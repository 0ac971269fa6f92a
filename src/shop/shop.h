/*
 * shop.h - the demo shop, a small real e-commerce backend.
 *
 * `storekeep shop --listen ADDR --db FILE --name NAME` serves a catalog,
 * a cookie cart and idempotent checkout from a SQLite (WAL) database that
 * several instances can share. It is what the demo, the end-to-end tests
 * and the benchmarks put behind storekeep.
 */
#ifndef SK_SHOP_SHOP_H
#define SK_SHOP_SHOP_H

/* Entry point of the `shop` subcommand; argv[0] is "shop". Runs until
 * SIGTERM or SIGINT; returns the process exit status (2 on usage errors). */
int shop_main(int argc, char **argv);

#endif
