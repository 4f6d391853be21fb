# shellcheck shell=sh
# Sourced by ci/test.sh and ci/coverage.sh: the counts of a JUnit file that ctest
# --output-junit wrote, so both scripts report a run by the same reading of it.
# junit_count FILE prints "TESTS FAILED SKIPPED" (SKIPPED includes disabled tests); a count
# the file lacks, or a missing file (a ctest that wrote nothing), reads as 0.

junit_attr() { # $1 = file, $2 = attribute of <testsuite>, which ctest writes one a line
    grep -m1 -oE "^[[:space:]]*$2=\"[0-9]+\"" "$1" 2>/dev/null | grep -oE '[0-9]+' || echo 0
}

junit_count() { # $1 = file
    echo "$(junit_attr "$1" tests) $(junit_attr "$1" failures)" \
        "$(($(junit_attr "$1" skipped) + $(junit_attr "$1" disabled)))"
}
