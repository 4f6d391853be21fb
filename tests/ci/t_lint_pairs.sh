#!/bin/sh
# ci/lint.sh's pairing rule fires: in a scratch repository holding the linter and one file
# of ref/src, an acquire load and a release store that do not say what they pair with are
# each reported, and the same lines with a "pairs with" comment (on the line, or in the
# comment just above) are not. Usage: t_lint_pairs.sh SOURCE_DIR
set -u
src=$1
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ci" "$work/ref/src"
cp "$src/ci/lint.sh" "$work/ci/"
cd "$work" && git init -q . || exit 1
fail=0
check() { # $1 = what, $2 = expected count of reports
    git add -A >/dev/null
    n=$(bash ci/lint.sh 2>&1 | grep -c 'does not say what it pairs with')
    if [ "$n" -ne "$2" ]; then
        echo "FAIL: $1: $n reports, expected $2"
        bash ci/lint.sh 2>&1 | grep 'pairs with'
        fail=1
    else
        echo "ok: $1 ($n)"
    fi
}
cat > ref/src/vdi_x.c <<'C'
static void publish(unsigned *w) {
    vdi_store_release(w, 1);
}
static unsigned see(const unsigned *w) {
    /* the word, read */
    return vdi_load_acquire(w);
}
C
check "two unpaired" 2
cat > ref/src/vdi_x.c <<'C'
static void publish(unsigned *w) {
    vdi_store_release(w, 1); /* pairs with see() */
}
static unsigned see(const unsigned *w) {
    /* The word, read: pairs with
     * publish() */
    return vdi_load_acquire(w);
}
C
check "both paired" 0
cat > ref/src/vdi_x.c <<'C'
static void both(unsigned *w) {
    vdi_store_release(w, 1); /* pairs with the load below */
    vdi_store_release(w, 2);
}
C
check "a comment on the line before covers only its line" 1
cat > ref/src/vdi_x.c <<'C'
static void reset(unsigned *w, unsigned *out) {
    /* pairs with nothing below: a statement follows */
    *out = 0;
    vdi_store_release(w, 0);
}
C
check "a statement that starts with * is no comment" 1
exit $fail
