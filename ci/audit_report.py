#!/usr/bin/env python3
"""The audit report: reads what ci/audit.sh collected (--raw DIR) and writes report.html
(one self-contained file: inline style and SVG plots, links only to files beside it),
report.md, results.sarif (SARIF 2.1.0) and junit.xml into --out DIR.

    ci/audit_report.py --raw DIR --source ROOT --out DIR

The raw folder: meta.txt (key=value), ctest-asan.xml (ctest's JUnit), scenarios.txt and
scenarios/<name>/{pct,dfs,faults}.txt (vdichaos output, each ending "exit N") with any
findings under scenarios/<name>/findings/, fuzz/table.txt and fuzz/<target>.log (ci/fuzz.sh),
and, beside the report, coverage/ (ci/coverage.sh: coverage.json, uncovered.txt, html/).
Every part is optional: a part that did not run says so in the report."""
import argparse
import html
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def exit_of(text):
    m = re.search(r"^exit (\d+)\s*$", text, re.M)
    return int(m.group(1)) if m else None


# ---- the parts --------------------------------------------------------------------------------

def parse_meta(raw):
    meta = {}
    for line in read(os.path.join(raw, "meta.txt")).splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            meta[k.strip()] = v.strip()
    return meta


def suite_of(name):
    """A test's suite: its name up to the first '.', else up to the first '_' (conf_api.codes
    is in conf_api, meta_peer_clean in meta, doc.readme in doc)."""
    if "." in name:
        return name.split(".", 1)[0]
    return name.split("_", 1)[0]


def parse_ctest(raw):
    path = os.path.join(raw, "ctest-asan.xml")
    if not os.path.exists(path):
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        return {"error": "ctest's JUnit file does not parse: %s" % e, "cases": []}
    cases = []
    for tc in root.iter("testcase"):
        status = tc.get("status", "run")
        failure = tc.find("failure")
        out = tc.findtext("system-out") or ""
        if status == "run" and failure is None:
            verdict = "passed"
        elif status in ("notrun", "disabled") or tc.find("skipped") is not None:
            verdict = "skipped"
        else:
            verdict = "failed"
        cases.append({"name": tc.get("name", "?"), "time": float(tc.get("time") or 0),
                      "verdict": verdict, "output": out,
                      "message": failure.get("message", "") if failure is not None else ""})
    return {"cases": cases}


def parse_pct(text):
    r = {"exit": exit_of(text), "bounds": {}}
    m = re.search(r"(\d+) pct runs", text)
    r["runs"] = int(m.group(1)) if m else None
    m = re.search(r"from n=(\d+) actors and k=(\d+) steps", text)
    if m:
        r["actors"], r["steps"] = int(m.group(1)), int(m.group(2))
    for d, p, b in re.findall(r"depth (\d+): per-run p >= ([0-9.e+-]+), missed after \d+ runs <= ([0-9.e+-]+)", text):
        r["bounds"][int(d)] = (p, b)
    return r


def parse_dfs(text):
    r = {"exit": exit_of(text), "complete": "search complete" in text}
    m = re.search(r"all (\d+) schedules with at most (\d+) preemptions", text)
    if m:
        r["schedules"], r["preemptions"] = int(m.group(1)), int(m.group(2))
    else:
        m = re.search(r"(\d+) schedules with at most (\d+) preemptions", text)
        if m:
            r["schedules"], r["preemptions"] = int(m.group(1)), int(m.group(2))
    return r


def parse_faults(text):
    r = {"exit": exit_of(text), "lines": []}
    for line in text.splitlines():
        m = re.match(r"\S+: (\d+) fail-point calls failed (once|persistent), (.*)$", line)
        if m:
            r["lines"].append((m.group(2), int(m.group(1)), m.group(3)))
    return r


def parse_scenarios(raw):
    names = []
    for line in read(os.path.join(raw, "scenarios.txt")).splitlines():
        if line.strip():
            name, _, desc = line.partition(" ")
            names.append((name, desc.strip()))
    out = []
    for name, desc in names:
        d = os.path.join(raw, "scenarios", name)
        if not os.path.isdir(d):
            continue
        s = {"name": name, "desc": desc,
             "pct": parse_pct(read(os.path.join(d, "pct.txt"))),
             "dfs": parse_dfs(read(os.path.join(d, "dfs.txt"))),
             "faults": parse_faults(read(os.path.join(d, "faults.txt"))),
             "findings": []}
        fd = os.path.join(d, "findings")
        if os.path.isdir(fd):
            s["findings"] = sorted(os.path.join(fd, f) for f in os.listdir(fd))
        out.append(s)
    return out


def fuzz_series(log):
    """(seconds, edges, execs) points from libFuzzer's status lines: its exec/s is the runs so
    far over the seconds since it started, so the time of a line is runs / exec/s."""
    pts = []
    for m in re.finditer(r"^#(\d+):?\s+(?:[A-Z_]+\s+)?cov: (\d+).*?exec/s:? (\d+)", log, re.M):
        n, cov, rate = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if rate > 0:
            pts.append((n / rate, cov, n))
    return pts


def parse_fuzz(raw):
    d = os.path.join(raw, "fuzz")
    table = read(os.path.join(d, "table.txt"))
    if not table:
        return None
    rows = []
    for line in table.splitlines()[1:]:
        f = line.split()
        if len(f) < 7:
            continue
        log = read(os.path.join(d, f[0] + ".log")) if f[1] == "libfuzzer" else ""
        corp = re.findall(r"corp: (\d+)/", log)
        rows.append({"target": f[0], "engine": f[1], "runs": f[2], "rate": f[3], "coverage": f[4],
                     "new": f[5], "crashes": f[6], "corpus": corp[-1] if corp else "-",
                     "series": fuzz_series(log)})
    return {"rows": rows, "exit": exit_of(read(os.path.join(raw, "fuzz.log")))}


def parse_coverage(out):
    d = os.path.join(out, "coverage")
    path = os.path.join(d, "coverage.json")
    if not os.path.exists(path):
        return None
    try:
        data = json.loads(read(path))
    except ValueError as e:
        return {"error": "coverage.json does not parse: %s" % e}
    files = []
    for blob in data.get("data", []):
        for f in blob.get("files", []):
            s = f.get("summary", {})
            files.append({"file": f.get("filename", "?"),
                          "lines": s.get("lines", {}), "branches": s.get("branches", {}),
                          "functions": s.get("functions", {})})
        totals = blob.get("totals", {})
    uncovered = read(os.path.join(d, "uncovered.txt")).splitlines()
    return {"files": files, "totals": totals if data.get("data") else {},
            "uncovered": uncovered, "html": os.path.exists(os.path.join(d, "html", "index.html"))}


def spec_rules(source):
    """The conformance table of tests/conformance/README.md: program, the rules it proves."""
    rows = []
    for line in read(os.path.join(source, "tests/conformance/README.md")).splitlines():
        m = re.match(r"^\| `t_(\w+)\.c` \| (.*) \|\s*$", line)
        if m:
            rows.append((m.group(1), m.group(2)))
    return rows


# ---- findings ---------------------------------------------------------------------------------

FRAME = re.compile(r"#\d+ 0x[0-9a-f]+ in (\S+) (/[^\s:]+):(\d+)")


def first_project_frame(text, source):
    """The first stack frame of text in the project's own sources (under ref/, chaos/, fuzz/
    or tests/ of the source root, matched relative to it): (path, line, function)."""
    root = os.path.realpath(source) + os.sep
    for fn, path, line in FRAME.findall(text or ""):
        p = os.path.realpath(path)
        if p.startswith(root):
            rel = p[len(root):]
            if rel.split(os.sep, 1)[0] in ("ref", "chaos", "fuzz", "tests"):
                return rel, int(line), fn
    return None


def test_definition(source, name):
    """Where a ctest test is defined: the first CMakeLists.txt line naming it, else naming its
    stem (conf_api.codes -> conf_api, meta_peer_x -> the function that makes it)."""
    stems = [name, name.split(".", 1)[0]]
    best = None
    for dirpath, dirs, files in os.walk(os.path.join(source, "tests")):
        dirs.sort()
        for f in sorted(files):
            if f != "CMakeLists.txt" and not f.endswith(".cmake"):
                continue
            p = os.path.join(dirpath, f)
            for i, line in enumerate(read(p).splitlines(), 1):
                for rank, stem in enumerate(stems):
                    if stem and stem in line and (best is None or rank < best[0]):
                        best = (rank, os.path.relpath(p, source), i)
    return (best[1], best[2]) if best else ("tests/CMakeLists.txt", 1)


def git_untracked(source, sub):
    try:
        r = subprocess.run(["git", "-C", source, "status", "--porcelain", "--untracked-files=all", "--", sub],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line[3:] for line in r.stdout.splitlines() if line.startswith("?? ")]


def collect_findings(source, ctest, scenarios, out):
    """Open findings: failed tests, this audit's scenario findings, new fuzz crashes (files
    under corpora/*/crash/ that git does not track yet), and the pending crashes of
    fuzz/pending-crashes/. Each: rule, message, location (path, line), reproducer, replay."""
    found = []
    for c in (ctest or {}).get("cases", []):
        if c["verdict"] != "failed":
            continue
        loc = first_project_frame(c["output"], source)
        path, line = (loc[0], loc[1]) if loc else test_definition(source, c["name"])
        first = next((l for l in c["output"].splitlines() if l.strip()), c["message"] or "failed")
        found.append({"rule": "test-failure", "message": "test %s failed: %s" % (c["name"], first[:300]),
                      "path": path, "line": line, "reproducer": None,
                      "replay": "ctest --test-dir build/asan -R '^%s$' --output-on-failure" % re.escape(c["name"])})
    for s in scenarios:
        for f in s["findings"]:
            text = read(f)[:20000]
            m = re.search(r"==chaos== (.*)", text)
            rel = os.path.relpath(f, out)
            loc = first_project_frame(text, source)
            found.append({"rule": "scenario-" + s["name"], "message": "scenario %s: %s" % (s["name"], m.group(1) if m else os.path.basename(f)),
                          "path": loc[0] if loc else None, "line": loc[1] if loc else None,
                          "reproducer": rel, "replay": "build/asan/chaos/vdichaos replay %s" % rel})
    for rel in git_untracked(source, "corpora"):
        parts = rel.split("/")
        if len(parts) >= 4 and parts[2] == "crash" and not rel.endswith(".md"):
            found.append({"rule": "fuzz-" + parts[3].split("-")[0], "message": "new crash of %s: %s" % (parts[1], parts[3]),
                          "path": None, "line": None, "reproducer": rel,
                          "replay": "build/asan/fuzz/%s_replay %s" % (parts[1], rel)})
    pend = os.path.join(source, "fuzz", "pending-crashes")
    for dirpath, dirs, files in os.walk(pend):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".md"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), source)
            target = os.path.basename(dirpath)
            replay = ("build/asan/chaos/vdichaos replay %s" % rel if target == "vdichaos"
                      else "build/asan/fuzz/%s_replay %s" % (target, rel))
            found.append({"rule": "pending-" + target, "message": "pending (known, not yet fixed): %s/%s" % (target, f),
                          "path": None, "line": None, "reproducer": rel, "replay": replay})
    for f in found: # a finding without a frame in the project: its reproducer is its place
        if not f["path"]:
            f["path"], f["line"] = (f["reproducer"] or "README.md"), 1
    return found


# ---- outputs ----------------------------------------------------------------------------------

def write_sarif(path, meta, findings):
    rules = sorted({f["rule"] for f in findings})
    run = {
        "tool": {"driver": {
            "name": "vdichaos", "version": meta.get("version", "0"),
            "informationUri": "https://github.com/vdichaos/vdichaos",
            "rules": [{"id": r, "name": re.sub(r"[^A-Za-z0-9]", "", r.title()) or "Finding",
                       "shortDescription": {"text": "vdichaos finding: %s" % r}} for r in rules]}},
        "versionControlProvenance": [{"repositoryUri": "https://github.com/vdichaos/vdichaos",
                                      "revisionId": meta.get("commit", "unknown")}] if meta.get("commit", "unknown") != "unknown" else [],
        "results": [],
    }
    if not run["versionControlProvenance"]:
        del run["versionControlProvenance"]
    for f in findings:
        text = f["message"] + ("\nreplay: " + f["replay"] if f["replay"] else "")
        run["results"].append({
            "ruleId": f["rule"], "ruleIndex": rules.index(f["rule"]), "level": "error",
            "message": {"text": text},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f["path"], "uriBaseId": "SRCROOT"},
                "region": {"startLine": max(1, int(f["line"] or 1))}}}],
            "partialFingerprints": {"vdichaosFinding/v1": re.sub(r"\s+", " ", f["rule"] + ":" + (f["reproducer"] or f["message"]))[:200]},
        })
    doc = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    with open(path, "w") as fp:
        json.dump(doc, fp, indent=1)
        fp.write("\n")


def write_junit(path, ctest, scenarios, fuzz):
    suites = {}
    for c in (ctest or {}).get("cases", []):
        suites.setdefault("vdichaos.tests." + suite_of(c["name"]), []).append(
            (c["name"], c["time"], c["verdict"], c["message"] or c["output"][-2000:]))
    for s in scenarios:
        for part in ("pct", "dfs", "faults"):
            r = s[part]
            ok = r["exit"] == 0
            verdict = "passed" if ok else ("skipped" if r["exit"] is None else "failed")
            suites.setdefault("vdichaos.schedules." + part, []).append(
                (s["name"], 0.0, verdict, "exit %s" % r["exit"]))
    for row in (fuzz or {}).get("rows", []):
        verdict = "passed" if row["crashes"] in ("0", "-") else "failed"
        suites.setdefault("vdichaos.fuzz", []).append(
            ("%s.%s" % (row["target"], row["engine"]), 0.0, verdict, "%s new crashes" % row["crashes"]))
    root = ET.Element("testsuites", name="vdichaos audit")
    for name in sorted(suites):
        cases = suites[name]
        ts = ET.SubElement(root, "testsuite", name=name, tests=str(len(cases)),
                           failures=str(sum(1 for c in cases if c[2] == "failed")),
                           skipped=str(sum(1 for c in cases if c[2] == "skipped")),
                           time="%.3f" % sum(c[1] for c in cases))
        for n, t, verdict, msg in cases:
            tc = ET.SubElement(ts, "testcase", name=n, classname=name, time="%.3f" % t)
            if verdict == "failed":
                ET.SubElement(tc, "failure", message=(msg or "failed")[:500]).text = msg
            elif verdict == "skipped":
                ET.SubElement(tc, "skipped")
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)


def svg_plot(series, title, w=420, h=150):
    """Coverage (edges) over seconds as an inline SVG line."""
    if not series:
        return "<p class=dim>no status lines to plot</p>"
    xs = [p[0] for p in series]
    ys = [p[1] for p in series]
    x0, x1 = 0.0, max(xs) or 1.0
    y0, y1 = min(ys), max(ys)
    if y1 == y0:
        y1 = y0 + 1
    pad = 34
    pts = " ".join("%.1f,%.1f" % (pad + (x - x0) / (x1 - x0) * (w - pad - 8),
                                  h - 20 - (y - y0) / (y1 - y0) * (h - 34)) for x, y in zip(xs, ys))
    return ('<svg class=plot xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="%s">'
            '<rect x="%d" y="14" width="%d" height="%d" fill="none" stroke="#bbb"/>'
            '<polyline fill="none" stroke="#2364aa" stroke-width="1.5" points="%s"/>'
            '<text x="%d" y="11" font-size="10">%s</text>'
            '<text x="2" y="18" font-size="9">%d</text><text x="2" y="%d" font-size="9">%d</text>'
            '<text x="%d" y="%d" font-size="9">0 s</text><text x="%d" y="%d" font-size="9" text-anchor="end">%.0f s</text>'
            '</svg>') % (w, h, html.escape(title), pad, w - pad - 8, h - 34, pts, pad, html.escape(title),
                         y1, h - 20, y0, pad, h - 6, w - 8, h - 6, x1)


def pct_text(p, d):
    b = p["bounds"].get(d)
    return "%s" % b[1] if b else "-"


def build(args):
    raw, source, out = args.raw, args.source, args.out
    meta = parse_meta(raw)
    ctest = parse_ctest(raw)
    scenarios = parse_scenarios(raw)
    fuzz = parse_fuzz(raw)
    cov = parse_coverage(out)
    rules = spec_rules(source)
    findings = collect_findings(source, ctest, scenarios, out)
    cases = (ctest or {}).get("cases", [])
    tally = {v: sum(1 for c in cases if c["verdict"] == v) for v in ("passed", "failed", "skipped")}
    if ctest and "error" in ctest:
        tally["failed"] += 1
    seeded = [c for c in cases if c["name"].startswith("meta")]

    md, h = [], []
    def both(mdline, htmlpart):
        if mdline is not None: # None: a part of the HTML only
            md.append(mdline)
        h.append(htmlpart)

    esc = html.escape

    def table(headers, rows):
        """One table in both forms. A cell is its text, ("code", text) for a command, or
        ("attr", text, attrs) for an HTML cell with attributes (a class, a title)."""
        def md_cell(c):
            text = c if isinstance(c, str) else c[1]
            text = text.replace("|", "\\|")
            return "`%s`" % text if not isinstance(c, str) and c[0] == "code" else text

        def html_cell(c):
            if isinstance(c, str):
                return "<td>%s" % esc(c.replace("`", ""))
            if c[0] == "code":
                return "<td><code>%s</code>" % esc(c[1])
            return "<td %s>%s" % (c[2], esc(c[1]))
        both("| %s |\n|%s" % (" | ".join(headers), "---|" * len(headers)),
             "<table><tr>%s" % "".join("<th>%s" % esc(x) for x in headers))
        for r in rows:
            both("| %s |" % " | ".join(md_cell(c) for c in r), "<tr>%s" % "".join(html_cell(c) for c in r))
        both("", "</table>")
    both("# vdichaos audit report", "<h1>vdichaos audit report</h1>")
    verdict = "clean" if not findings and tally["failed"] == 0 else "%d open finding(s), %d failed test(s)" % (len(findings), tally["failed"])
    both("**Verdict: %s.**\n" % verdict, "<p class=verdict>Verdict: <b>%s</b></p>" % esc(verdict))

    both("## What was audited\n", "<h2 id=audited>What was audited</h2><table>")
    for k in ("commit", "dirty", "version", "date", "cc", "gcc", "cmake", "os", "machine", "sanitizers",
              "budget_minutes", "pct_runs", "dfs_runs"):
        if k in meta:
            both("- %s: %s" % (k, meta[k]), "<tr><th>%s<td>%s" % (esc(k), esc(meta[k])))
    both("", "</table>")

    both("\n## Findings\n", "<h2 id=findings>Findings</h2>")
    if findings:
        table(["rule", "finding", "where", "replay"],
              [[f["rule"], f["message"], "%s:%s" % (f["path"], f["line"]), ("code", f["replay"])] for f in findings])
    else:
        both("No open finding.", "<p>No open finding.</p>")

    both("\n## Tests\n", "<h2 id=tests>Tests</h2>")
    if ctest is None:
        both("The tests did not run (--no-tests).", "<p class=dim>The tests did not run (--no-tests).</p>")
    elif "error" in ctest:
        both(ctest["error"], "<p class=bad>%s</p>" % esc(ctest["error"]))
    else:
        both("%d passed, %d failed, %d skipped (ctest, asan preset: ASan+UBSan)." % (tally["passed"], tally["failed"], tally["skipped"]),
             "<p>%d passed, %d failed, %d skipped (ctest, asan preset: ASan+UBSan).</p>" % (tally["passed"], tally["failed"], tally["skipped"]))

    both("\n## Seeded-bug self-check\n", "<h2 id=seeded>Seeded-bug self-check</h2>")
    if seeded:
        both("Each seeded bug (a copy of the reference with one bug, tests/meta) must be caught.\n",
             "<p>Each seeded bug (a copy of the reference with one bug, tests/meta) must be caught.</p>")
        rows = []
        for c in seeded:
            lines = c["output"].splitlines()
            by = next((l.strip() for l in lines if re.search(r"caught by|^\s*(==\w+==|FINDING)", l)), "")
            ok = "yes" if c["verdict"] == "passed" else "NO"
            rows.append([c["name"], ("attr", ok, "class=%s" % ("ok" if ok == "yes" else "bad")), by[:160]])
        table(["bug", "caught", "by"], rows)
    else:
        both("Not run.", "<p class=dim>Not run.</p>")

    both("\n## Schedule exploration and fault sweeps\n", "<h2 id=schedules>Schedule exploration and fault sweeps</h2>")
    if scenarios:
        rows = []
        for sc in scenarios:
            p, d, fl = sc["pct"], sc["dfs"], sc["faults"]
            sweep = "; ".join("%d failed %s: %s" % (n, how, res) for how, n, res in fl["lines"]) or ("exit %s" % fl["exit"])
            dfs = "%s (P=%s)" % (d.get("schedules", "-"), d.get("preemptions", "-"))
            rows.append([("attr", sc["name"], "title='%s'" % esc(sc["desc"], quote=True)), str(p["runs"]),
                         "%s / %s / %s" % (pct_text(p, 1), pct_text(p, 2), pct_text(p, 3)), dfs,
                         "yes" if d["complete"] else "no", sweep])
        table(["scenario", "PCT runs", "missed depth 1 / 2 / 3 <=", "DFS schedules (<= P preemptions)", "exhausted", "fault sweep"], rows)
    else:
        both("Not run.", "<p class=dim>Not run.</p>")

    both("\n## Fuzzing\n", "<h2 id=fuzzing>Fuzzing</h2>")
    if fuzz:
        keys = ("target", "engine", "runs", "rate", "corpus", "coverage", "new", "crashes")
        table(["target", "engine", "executions", "exec/s", "corpus", "coverage", "new inputs", "crashes"],
              [[str(r[k]) for k in keys] for r in fuzz["rows"]])
        both(None, "<div class=plots>")
        for r in fuzz["rows"]:
            if r["engine"] == "libfuzzer":
                both(None, "<figure>%s<figcaption>%s: edges over seconds</figcaption></figure>" % (svg_plot(r["series"], r["target"]), esc(r["target"])))
        both("(Coverage over time is plotted in report.html.)", "</div>")
    else:
        both("Not run.", "<p class=dim>Not run.</p>")

    both("\n## Coverage of ref/\n", "<h2 id=coverage>Coverage of ref/</h2>")
    if cov and "error" not in cov:
        t = cov.get("totals", {})
        def pc(x):
            return "%.1f%%" % x.get("percent", 0) if x else "-"
        both("Totals: lines %s, branches %s, functions %s.\n" % (pc(t.get("lines")), pc(t.get("branches")), pc(t.get("functions"))),
             "<p>Totals: lines %s, branches %s, functions %s.%s</p>" % (pc(t.get("lines")), pc(t.get("branches")), pc(t.get("functions")),
                                                                        " <a href='coverage/html/index.html'>Annotated sources</a>." if cov["html"] else ""))
        table(["file", "lines", "branches", "functions"],
              [[f["file"], pc(f["lines"]), pc(f["branches"]), pc(f["functions"])] for f in cov["files"]])
        if cov["uncovered"]:
            both("\nLines no test or fuzz target reached (%d ranges; all in coverage/uncovered.txt):\n\n```\n%s\n```" % (len(cov["uncovered"]), "\n".join(cov["uncovered"][:60])),
                 "<details><summary>Lines never reached: %d ranges</summary><pre>%s</pre></details>" % (len(cov["uncovered"]), esc("\n".join(cov["uncovered"]))))
    else:
        msg = cov["error"] if cov else "Not measured (ci/coverage.sh did not run)."
        both(msg, "<p class=dim>%s</p>" % esc(msg))

    both("\n## Conformance\n", "<h2 id=conformance>Conformance</h2>")
    if rules:
        rows = []
        for stem, what in rules:
            mine = [c for c in cases if c["name"] == "conf_" + stem or c["name"].startswith("conf_%s." % stem)]
            ok = sum(1 for c in mine if c["verdict"] == "passed")
            rows.append(["t_%s.c" % stem, what, "%d of %d" % (ok, len(mine)) if mine else "not run"])
        table(["program", "VDI-SPEC rules", "tests passed"], rows)

    style = ("body{font:14px/1.4 sans-serif;margin:2em;max-width:1100px;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
             "th{background:#f3f3f3}.dim{color:#777}.ok{color:#1a7f37}.bad{color:#b42318;font-weight:bold}"
             ".verdict{font-size:16px}.plots{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}code{font-size:12px}")
    doc = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>vdichaos audit report</title>"
           "<style>%s</style></head><body>%s</body></html>\n") % (style, "\n".join(h))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.html"), "w") as f:
        f.write(doc)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    write_sarif(os.path.join(out, "results.sarif"), meta, findings)
    write_junit(os.path.join(out, "junit.xml"), ctest, scenarios, fuzz)
    print("audit report: %s (%s); %d findings" % (os.path.join(out, "report.html"), verdict, len(findings)))
    return 0 if not findings and tally["failed"] == 0 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not os.path.isdir(args.raw):
        print("audit_report: no folder %s" % args.raw, file=sys.stderr)
        return 2
    return build(args)


if __name__ == "__main__":
    sys.exit(main())
