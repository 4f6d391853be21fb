/* tsql.cpp: a tokenizer and a recursive-descent parser for BACKUP / RESTORE to virtual
 * devices. Errors name the token they stopped at, the way SQL Server's Msg 102 does. */
#include "tsql.h"

#include <cctype>
#include <cstdlib>

namespace {

enum tok_kind { T_WORD, T_STRING, T_NUMBER, T_PUNCT, T_END };

struct token {
    tok_kind kind;
    std::string text; /* WORD: as written (a [..] or ".." name unquoted); STRING: the value */
    bool quoted_name; /* a [..] or ".." identifier: never a keyword */
    int line;
};

std::string upper(const std::string &s) {
    std::string u = s;
    for (char &c : u)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return u;
}

bool word_char(char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return std::isalnum(u) || c == '_' || c == '@' || c == '#' || c == '$' || u >= 0x80;
}

class lexer {
  public:
    explicit lexer(const std::string &s) : src_(s) {}

    /* false with *err on an unclosed quote or comment. */
    bool run(std::vector<token> *out, tsql_error *err) {
        for (;;) {
            skip_space();
            if (pos_ >= src_.size()) {
                out->push_back({T_END, "", false, line_});
                return true;
            }
            if (!next(out, err))
                return false;
        }
    }

  private:
    void skip_space() {
        while (pos_ < src_.size()) {
            char c = src_[pos_];
            if (c == '\n') {
                line_++;
                pos_++;
            } else if (std::isspace(static_cast<unsigned char>(c))) {
                pos_++;
            } else if (src_.compare(pos_, 2, "--") == 0) {
                while (pos_ < src_.size() && src_[pos_] != '\n')
                    pos_++;
            } else if (src_.compare(pos_, 2, "/*") == 0) {
                size_t end = src_.find("*/", pos_ + 2);
                size_t stop = end == std::string::npos ? src_.size() : end + 2;
                for (size_t i = pos_; i < stop; i++)
                    line_ += src_[i] == '\n';
                pos_ = stop;
            } else {
                return;
            }
        }
    }

    /* A quoted run closed by `close`, where a doubled close stands for itself. */
    bool quoted(char close, std::string *val) {
        size_t i = pos_ + 1;
        for (;;) {
            if (i >= src_.size())
                return false;
            if (src_[i] == close) {
                if (i + 1 < src_.size() && src_[i + 1] == close) {
                    val->push_back(close);
                    i += 2;
                    continue;
                }
                break;
            }
            if (src_[i] == '\n')
                line_++;
            val->push_back(src_[i++]);
        }
        pos_ = i + 1;
        return true;
    }

    /* Msg 105, as SQL Server words it. */
    bool unclosed_quote(tsql_error *err, int at) const {
        err->number = 105;
        err->level = 15;
        err->line = at;
        err->text =
            "Unclosed quotation mark after the character string '" + src_.substr(pos_ + 1) + "'.";
        return false;
    }

    bool next(std::vector<token> *out, tsql_error *err) {
        char c = src_[pos_];
        int at = line_;
        std::string val;
        bool national = (c == 'N' || c == 'n') && pos_ + 1 < src_.size() && src_[pos_ + 1] == '\'';
        if (national)
            pos_++;
        if (src_[pos_] == '\'') {
            if (!quoted('\'', &val)) {
                return unclosed_quote(err, at);
            }
            out->push_back({T_STRING, val, false, at});
            return true;
        }
        if (c == '[' || c == '"') {
            if (!quoted(c == '[' ? ']' : '"', &val)) {
                return unclosed_quote(err, at);
            }
            out->push_back({T_WORD, val, true, at});
            return true;
        }
        if (std::isdigit(static_cast<unsigned char>(c))) {
            size_t b = pos_;
            while (pos_ < src_.size() && word_char(src_[pos_]))
                pos_++;
            std::string w = src_.substr(b, pos_ - b);
            bool digits = w.find_first_not_of("0123456789") == std::string::npos;
            out->push_back({digits ? T_NUMBER : T_WORD, w, false, at});
            return true;
        }
        if (word_char(c)) {
            size_t b = pos_;
            while (pos_ < src_.size() && word_char(src_[pos_]))
                pos_++;
            out->push_back({T_WORD, src_.substr(b, pos_ - b), false, at});
            return true;
        }
        pos_++;
        out->push_back({T_PUNCT, std::string(1, c), false, at});
        return true;
    }

    const std::string &src_;
    size_t pos_ = 0;
    int line_ = 1;
};

class parser {
  public:
    parser(const std::vector<token> &t, tsql_error *err) : t_(t), err_(err) {}

    bool statement(tsql_statement *st) {
        st->line = peek().line;
        if (is_kw("BACKUP"))
            st->restore = false;
        else if (is_kw("RESTORE"))
            st->restore = true;
        else
            return not_supported();
        pos_++;
        if (is_kw("DATABASE"))
            st->log = false;
        else if (is_kw("LOG"))
            st->log = true;
        else
            return syntax();
        pos_++;
        if (!name(&st->database))
            return false;
        if (!is_kw(st->restore ? "FROM" : "TO"))
            return syntax();
        pos_++;
        do {
            std::string dev;
            if (!device(&dev))
                return false;
            st->devices.push_back(dev);
        } while (punct(","));
        if (is_kw("WITH")) {
            pos_++;
            do {
                if (!option(st))
                    return false;
            } while (punct(","));
        }
        punct(";");
        if (peek().kind != T_END)
            return syntax();
        return true;
    }

  private:
    const token &peek() const {
        return t_[pos_];
    }

    bool is_kw(const char *kw) const {
        return peek().kind == T_WORD && !peek().quoted_name && upper(peek().text) == kw;
    }

    bool punct(const char *p) {
        if (peek().kind == T_PUNCT && peek().text == p) {
            pos_++;
            return true;
        }
        return false;
    }

    bool fail(int number, int level, const std::string &text) {
        err_->number = number;
        err_->level = level;
        err_->state = 1;
        err_->line = peek().line;
        err_->text = text;
        return false;
    }

    /* Msg 102 names the token where parsing stopped; at the end, the last one. */
    bool syntax() {
        const token &at = peek().kind == T_END && pos_ > 0 ? t_[pos_ - 1] : peek();
        if (at.kind == T_END)
            return fail(102, 15, "Incorrect syntax near the end of the statement.");
        err_->line = at.line;
        err_->number = 102;
        err_->level = 15;
        err_->state = 1;
        err_->text = "Incorrect syntax near '" + at.text + "'.";
        return false;
    }

    bool not_supported() {
        if (peek().kind == T_END)
            return fail(102, 15, "Incorrect syntax near the end of the statement.");
        return fail(40000, 16,
                    "vdi-sqlcmd runs only BACKUP and RESTORE statements on virtual devices; "
                    "'" +
                        peek().text + "' is not one of them.");
    }

    bool name(std::string *out) {
        const token &k = peek();
        if (k.kind == T_WORD && (k.quoted_name || !reserved(upper(k.text))) && !k.text.empty()) {
            *out = k.text;
            pos_++;
            return true;
        }
        return syntax();
    }

    static bool reserved(const std::string &w) {
        return w == "TO" || w == "FROM" || w == "WITH" || w == "DATABASE" || w == "LOG";
    }

    bool device(std::string *out) {
        if (is_kw("DISK") || is_kw("TAPE") || is_kw("URL"))
            return fail(3206, 16,
                        "vdi-sqlcmd backs up to virtual devices only: use VIRTUAL_DEVICE = "
                        "'name' instead of " +
                            upper(peek().text) + ".");
        if (!is_kw("VIRTUAL_DEVICE"))
            return syntax();
        pos_++;
        if (!punct("="))
            return syntax();
        if (peek().kind != T_STRING)
            return syntax();
        if (peek().text.empty())
            return fail(3201, 16, "Cannot open backup device ''. The device name is empty.");
        *out = peek().text;
        pos_++;
        return true;
    }

    /* A number option's value; out of range is SQL Server's Msg 3205-style error. */
    bool number_value(const std::string &opt, uint64_t lo, uint64_t hi, uint64_t *v) {
        if (!punct("="))
            return syntax();
        if (peek().kind != T_NUMBER)
            return syntax();
        const std::string &d = peek().text;
        *v = d.size() > 12 ? UINT64_MAX : std::strtoull(d.c_str(), nullptr, 10);
        if (*v < lo || *v > hi)
            return fail(3205, 16,
                        "The value " + d + " is out of range for option " + opt + " (" +
                            std::to_string(lo) + " to " + std::to_string(hi) + ").");
        pos_++;
        return true;
    }

    bool option(tsql_statement *st) {
        if (peek().kind != T_WORD || peek().quoted_name)
            return syntax();
        std::string opt = upper(peek().text);
        pos_++;
        uint64_t v = 0;
        if (opt == "BLOCKSIZE") {
            if (!number_value(opt, 512, 65536, &v))
                return false;
            if (v & (v - 1))
                return fail(3252, 16,
                            "The block size parameter must supply a value that is a power "
                            "of 2.");
            st->block_size = static_cast<uint32_t>(v);
        } else if (opt == "BUFFERCOUNT") {
            if (!number_value(opt, 1, 4096, &v))
                return false;
            st->buffer_count = static_cast<uint32_t>(v);
        } else if (opt == "MAXTRANSFERSIZE") {
            if (!number_value(opt, 65536, 4194304, &v))
                return false;
            if (v % 65536)
                return fail(3205, 16, "MAXTRANSFERSIZE must be a multiple of 65536 bytes (64 KB).");
            st->max_transfer = static_cast<uint32_t>(v);
        } else if (opt == "STATS") {
            st->stats = 10;
            if (peek().kind == T_PUNCT && peek().text == "=") {
                if (!number_value(opt, 1, 100, &v))
                    return false;
                st->stats = static_cast<int>(v);
            }
        } else if (opt == "FORMAT" || opt == "INIT") {
            if (st->restore)
                return misplaced(opt);
            (opt == "FORMAT" ? st->format : st->init) = true;
        } else if (opt == "REPLACE") {
            if (!st->restore)
                return misplaced(opt);
            st->replace = true;
        } else if (opt == "MOVE") {
            /* MOVE 'logical' TO 'physical': accepted, the image has one file. */
            if (!st->restore)
                return misplaced(opt);
            if (peek().kind != T_STRING)
                return syntax();
            pos_++;
            if (!is_kw("TO"))
                return syntax();
            pos_++;
            if (peek().kind != T_STRING)
                return syntax();
            pos_++;
            st->accepted.push_back(opt);
        } else {
            if (punct("=")) {
                if (peek().kind == T_END || peek().kind == T_PUNCT)
                    return syntax();
                pos_++;
            }
            st->accepted.push_back(opt);
        }
        return true;
    }

    bool misplaced(const std::string &opt) {
        pos_--;
        std::string lower = opt;
        for (char &c : lower)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return fail(3032, 16,
                    "One or more of the options (" + lower +
                        ") are not supported for this statement. Review the documentation "
                        "for supported options.");
    }

    const std::vector<token> &t_;
    tsql_error *err_;
    size_t pos_ = 0;
};

} // namespace

bool tsql_parse(const std::string &text, tsql_statement *st, tsql_error *err) {
    std::vector<token> toks;
    lexer lx(text);
    if (!lx.run(&toks, err))
        return false;
    *st = tsql_statement();
    parser p(toks, err);
    return p.statement(st);
}

std::string tsql_verb(const tsql_statement &st) {
    return std::string(st.restore ? "RESTORE" : "BACKUP") + (st.log ? " LOG" : " DATABASE");
}
