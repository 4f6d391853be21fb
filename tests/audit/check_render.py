#!/usr/bin/env python3
"""Renders an audit report in headless Chromium and judges what a reader would see.

check_render.py CHROMIUM REPORT_HTML [--want-plot] [--shot FILE]

- a screenshot is taken (a PNG of the requested size, not blank: some share of its
  pixels are not the background, in more than a handful of colours);
- the DOM after parsing holds the report's title and, with --want-plot, a plot (an
  <svg> with a line in it);
- no link or resource is broken: every href/src of the rendered page is a fragment that
  names an element of the page, or a file beside the report; nothing is fetched from
  the network (the report is self-contained).
Exit 0 when it renders, 1 with the reasons otherwise, 2 when Chromium cannot run.
"""
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

WIDTH, HEIGHT = 1200, 1600


def chromium(binary, args, timeout=90):
    cmd = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--no-first-run", "--disable-extensions",
           "--window-size=%d,%d" % (WIDTH, HEIGHT)] + args
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          env=dict(os.environ, HOME=tempfile.gettempdir()))


def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError("PNG kind %d/%d/%d not handled" % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride, rows, prev = w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def judge_shot(path, problems):
    try:
        w, h, bpp, rows = png_pixels(path)
    except (OSError, ValueError, zlib.error, TypeError, struct.error) as e:
        problems.append("the screenshot is not a readable PNG: %s" % e)
        return
    if (w, h) != (WIDTH, HEIGHT):
        problems.append("the screenshot is %dx%d, not %dx%d" % (w, h, WIDTH, HEIGHT))
    colours, inked, total = set(), 0, 0
    for y in range(0, h, 4):
        row = rows[y]
        for x in range(0, w, 4):
            px = row[x * bpp:x * bpp + 3]
            colours.add(px)
            total += 1
            inked += px != b"\xff\xff\xff"
    if inked < total // 50 or len(colours) < 8:
        problems.append("the screenshot looks blank (%d of %d sampled pixels inked, %d colours)"
                        % (inked, total, len(colours)))


def judge_dom(dom, base, want_plot, problems):
    if "vdichaos audit report" not in dom:
        problems.append("the rendered page has no report title")
    if want_plot and not re.search(r"<svg\b[^>]*>.*?<(polyline|path|line)\b", dom, re.S):
        problems.append("the rendered page has no plot (an <svg> with a line)")
    ids = set(re.findall(r'\bid="([^"]+)"', dom))
    for attr, url in re.findall(r'\b(href|src)="([^"]*)"', dom):
        if url.startswith("#"):
            if url[1:] and url[1:] not in ids:
                problems.append("a broken link to %s (no such element)" % url)
        elif re.match(r"^(https?:|//)", url):
            problems.append("a %s to the network: %s (the report must be self-contained)" % (attr, url))
        elif url.startswith("data:"):
            continue
        else:
            target = url.split("#")[0].split("?")[0]
            if target.startswith("file://"):
                target = target[7:]
            elif target:
                target = os.path.join(base, target)
            if target and not os.path.exists(target):
                problems.append("a broken link to %s" % url)


def main():
    args = sys.argv[1:]
    want_plot = "--want-plot" in args
    shot = None
    if "--shot" in args:
        shot = args[args.index("--shot") + 1]
        args = [a for a in args if a not in ("--shot", shot)]
    args = [a for a in args if a != "--want-plot"]
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary, report = args
    report = os.path.abspath(report)
    url = "file://" + report
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        png = shot or os.path.join(tmp, "shot.png")
        try:
            r = chromium(binary, ["--screenshot=" + png, url])
            d = chromium(binary, ["--dump-dom", url])
        except (OSError, subprocess.TimeoutExpired) as e:
            print("check_render: chromium did not run: %s" % e)
            return 2
        if not os.path.exists(png):
            print("check_render: chromium wrote no screenshot (exit %d): %s"
                  % (r.returncode, r.stderr.decode(errors="replace")[-400:]))
            return 2
        judge_shot(png, problems)
        judge_dom(d.stdout.decode(errors="replace"), os.path.dirname(report), want_plot, problems)
    for p in problems:
        print("check_render: %s: %s" % (report, p))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
