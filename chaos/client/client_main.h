/* client_main.h: the entry point of `vdichaos client` (argv[0] is "client"). */
#ifndef CHAOS_CLIENT_MAIN_H
#define CHAOS_CLIENT_MAIN_H

int vdichaos_client_main(int argc, char **argv);

#endif /* CHAOS_CLIENT_MAIN_H */
