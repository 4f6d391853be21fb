/* client_tool.c: vdichaos-client, the same command as `vdichaos client` on its own (for a
 * build of the CLI that leaves the client audit out); a first argument "client" is
 * accepted, so either spelling of the command line works. */
#include "client_main.h"

#include <string.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "client") == 0)
        return vdichaos_client_main(argc - 1, argv + 1);
    return vdichaos_client_main(argc, argv);
}
