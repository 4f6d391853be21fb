/* tsql.h: the one kind of T-SQL that vdi-sqlcmd runs: BACKUP and RESTORE of a database or
 * its log to or from virtual devices, with the WITH options that shape the VDI session.
 * Keywords are case-insensitive; names may be bare, [bracketed] or "quoted"; device names
 * are '...' or N'...' strings. */
#ifndef VDI_SQLCMD_TSQL_H
#define VDI_SQLCMD_TSQL_H

#include <cstdint>
#include <string>
#include <vector>

struct tsql_statement {
    bool restore = false; /* RESTORE ... FROM, else BACKUP ... TO */
    bool log = false;     /* LOG, else DATABASE */
    std::string database;
    std::vector<std::string> devices; /* VIRTUAL_DEVICE names, in statement order */
    uint32_t block_size = 0;          /* BLOCKSIZE, 0 = default */
    uint32_t buffer_count = 0;        /* BUFFERCOUNT, 0 = default */
    uint32_t max_transfer = 0;        /* MAXTRANSFERSIZE, 0 = default */
    bool format = false, init = false, replace = false;
    int stats = 0;                     /* STATS percent step, 0 = no progress lines */
    std::vector<std::string> accepted; /* other WITH options, upper-cased, accepted as-is */
    int line = 1;                      /* line of the statement's first token */
};

/* An error as SQL Server reports it: "Msg <number>, Level <level>, State <state>". */
struct tsql_error {
    int number = 0;
    int level = 16;
    int state = 1;
    int line = 1;
    std::string text;
};

/* Parses one statement (an optional ';' may end it). false with *err filled on a syntax
 * error (Msg 102 / 105 style) or an option that the statement does not allow. */
bool tsql_parse(const std::string &text, tsql_statement *st, tsql_error *err);

/* "BACKUP DATABASE", "RESTORE LOG", ...: how SQL Server names the statement in its
 * messages. */
std::string tsql_verb(const tsql_statement &st);

#endif /* VDI_SQLCMD_TSQL_H */
