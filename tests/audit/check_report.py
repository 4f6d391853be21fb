#!/usr/bin/env python3
"""Checks the four files of an audit report (ci/audit_report.py) and prints what is wrong;
exit 0 when nothing is.

    check_report.py DIR [--expect-rule RULE:URI:LINE]... [--expect-suite NAME]...
                        [--expect-text TEXT]... [--expect-findings N]

results.sarif: the SARIF 2.1.0 properties a consumer (code scanning) needs: version, a run
with tool.driver.name, unique rule ids, and per result a ruleId among them with its
ruleIndex, a level of the standard four, a message, and a physical location whose uri is
relative to the source root and whose startLine is 1 or more. junit.xml: parses, every
suite has a real name (not "(empty)") and counts that match its cases. report.html: one
self-contained file (no script, no remote style, image or link), every relative link to a
file that exists, the sections present. report.md: the same sections."""
import json
import os
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

SECTIONS = ["audited", "findings", "tests", "seeded", "schedules", "fuzzing", "coverage"]
errors = []


def err(msg):
    errors.append(msg)


def check_sarif(path, expect_rules, expect_findings):
    try:
        doc = json.load(open(path))
    except (OSError, ValueError) as e:
        return err("results.sarif: %s" % e)
    if doc.get("version") != "2.1.0":
        err("results.sarif: version is %r, not 2.1.0" % doc.get("version"))
    if "sarif" not in str(doc.get("$schema", "")):
        err("results.sarif: no $schema")
    runs = doc.get("runs")
    if not isinstance(runs, list) or len(runs) != 1:
        return err("results.sarif: not one run")
    run = runs[0]
    driver = run.get("tool", {}).get("driver", {})
    if not isinstance(driver.get("name"), str) or not driver["name"]:
        err("results.sarif: tool.driver.name missing")
    rules = [r.get("id") for r in driver.get("rules", [])]
    if len(set(rules)) != len(rules) or not all(isinstance(r, str) and r for r in rules):
        err("results.sarif: rule ids not unique strings: %r" % rules)
    results = run.get("results")
    if not isinstance(results, list):
        return err("results.sarif: no results array")
    got = set()
    for i, r in enumerate(results):
        where = "results.sarif: result %d" % i
        if r.get("ruleId") not in rules:
            err("%s: ruleId %r is not a rule" % (where, r.get("ruleId")))
        elif r.get("ruleIndex") != rules.index(r["ruleId"]):
            err("%s: ruleIndex %r is not its rule's" % (where, r.get("ruleIndex")))
        if r.get("level") not in ("none", "note", "warning", "error"):
            err("%s: level %r" % (where, r.get("level")))
        if not isinstance(r.get("message", {}).get("text"), str) or not r["message"]["text"]:
            err("%s: no message text" % where)
        locs = r.get("locations")
        if not isinstance(locs, list) or not locs:
            err("%s: no location" % where)
            continue
        pl = locs[0].get("physicalLocation", {})
        uri = pl.get("artifactLocation", {}).get("uri")
        line = pl.get("region", {}).get("startLine")
        if not isinstance(uri, str) or not uri or uri.startswith("/") or "://" in uri:
            err("%s: uri %r is not relative to the source root" % (where, uri))
        if not isinstance(line, int) or line < 1:
            err("%s: startLine %r" % (where, line))
        got.add("%s:%s:%s" % (r.get("ruleId"), uri, line))
    for e in expect_rules:
        if e not in got:
            err("results.sarif: no result %s (have %s)" % (e, sorted(got)))
    if expect_findings is not None and len(results) != expect_findings:
        err("results.sarif: %d results, want %d" % (len(results), expect_findings))


def check_junit(path, expect_suites):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        return err("junit.xml: %s" % e)
    names = []
    for ts in root.iter("testsuite"):
        name = ts.get("name", "")
        names.append(name)
        if not name or name == "(empty)":
            err("junit.xml: a suite without a real name")
        cases = ts.findall("testcase")
        if int(ts.get("tests", -1)) != len(cases):
            err("junit.xml: suite %s says %s tests, has %d" % (name, ts.get("tests"), len(cases)))
        fails = sum(1 for c in cases if c.find("failure") is not None)
        if int(ts.get("failures", -1)) != fails:
            err("junit.xml: suite %s says %s failures, has %d" % (name, ts.get("failures"), fails))
    for s in expect_suites:
        if s not in names:
            err("junit.xml: no suite %s (have %s)" % (s, names))


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.ids, self.bad = [], set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "script":
            self.bad.append("a <script>")
        for k in ("href", "src"):
            v = a.get(k)
            if v is None:
                continue
            if "://" in v or v.startswith("//"):
                self.bad.append("a remote %s=%s" % (k, v))
            elif not v.startswith("#") and not v.startswith("data:"):
                self.refs.append(v)


def check_html(d, texts):
    path = os.path.join(d, "report.html")
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        return err("report.html: %s" % e)
    p = Links()
    p.feed(text)
    for b in p.bad:
        err("report.html: not self-contained: %s" % b)
    for r in p.refs:
        if not os.path.exists(os.path.join(d, r.split("#", 1)[0])):
            err("report.html: a broken link to %s" % r)
    for s in SECTIONS:
        if s not in p.ids:
            err("report.html: no section #%s" % s)
    for t in texts:
        if t not in text:
            err("report.html: no %r" % t)
    md = open(os.path.join(d, "report.md"), encoding="utf-8").read() if os.path.exists(os.path.join(d, "report.md")) else ""
    for h in ("## What was audited", "## Findings", "## Seeded-bug self-check", "## Fuzzing", "## Coverage of ref/"):
        if h not in md:
            err("report.md: no %r" % h)


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    d = args.pop(0)
    rules, suites, texts, nfind = [], [], [], None
    while args:
        k = args.pop(0)
        v = args.pop(0) if args else ""
        if k == "--expect-rule":
            rules.append(v)
        elif k == "--expect-suite":
            suites.append(v)
        elif k == "--expect-text":
            texts.append(v)
        elif k == "--expect-findings":
            nfind = int(v)
        else:
            print("check_report: unknown option %s" % k)
            return 2
    check_sarif(os.path.join(d, "results.sarif"), rules, nfind)
    check_junit(os.path.join(d, "junit.xml"), suites)
    check_html(d, texts)
    for e in errors:
        print("check_report: " + e)
    if not errors:
        print("check_report: %s: the SARIF, JUnit, HTML and Markdown are sound" % d)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
