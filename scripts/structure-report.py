#!/usr/bin/env python3
"""Structure figures for crates/repo (and the CLI), as issue 13 asks them to be counted.

    python3 scripts/structure-report.py [--list]

Counts: source files over 500 lines; non-test functions over 80 lines (body lines from the
`fn` line to its closing brace, brace-matched outside strings, comments and chars);
`impl Repository` blocks outside repository.rs; direct `storage.` calls outside the storage
layer (crates/repo/src/storage, the object layer and the blob reader); `block_on` bridges: sync code inside
the library blocking on the runtime (the blocking facade, crates/repo/src/blocking.rs, and
the front ends' entry points, CLI main and the C ABI's handle, are where blocking belongs and
are not counted). Tests (files under tests/, `#[cfg(test)] mod` blocks, src/tests.rs) are
left out.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CRATES = ["crates/repo/src", "crates/cli/src", "crates/ffi/src"]
STORAGE_LAYER = ("crates/repo/src/storage/", "crates/repo/src/object/", "crates/repo/src/blobs/")


def strip(text):
    """Blanks out comments, strings and char literals, keeping line breaks."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not text[i - 1].isalnum()):
            m = re.match(r'r(#*)"', text[i:]); end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j + 1])); i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x..'", text[i:i + 12]):
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\x..|\\.|[^\\'])'", text[i:])
            out.append(" " * len(m.group(0))); i += len(m.group(0))
        else:
            out.append(c); i += 1
    return "".join(out)


def test_spans(code):
    """Line ranges of `#[cfg(test)]` modules."""
    spans = []
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code):
        start = m.end() - 1
        depth, j = 0, start
        while j < len(code):
            if code[j] == "{": depth += 1
            elif code[j] == "}":
                depth -= 1
                if depth == 0: break
            j += 1
        spans.append((code.count("\n", 0, m.start()), code.count("\n", 0, j)))
    return spans


def functions(code):
    for m in re.finditer(r"\bfn\s+(\w+)", code):
        # the body starts at the first `{` at nesting depth 0 after the signature
        j, paren, angle = m.end(), 0, 0
        while j < len(code):
            ch = code[j]
            if ch == "(": paren += 1
            elif ch == ")": paren -= 1
            elif ch == ";" and paren == 0: j = -1; break
            elif ch == "{" and paren == 0: break
            j += 1
        if j < 0 or j >= len(code):
            continue
        depth, k = 0, j
        while k < len(code):
            if code[k] == "{": depth += 1
            elif code[k] == "}":
                depth -= 1
                if depth == 0: break
            k += 1
        first = code.count("\n", 0, m.start())
        last = code.count("\n", 0, k)
        yield m.group(1), first, last - first + 1


def main():
    listing = "--list" in sys.argv
    long_files, long_fns, impls, storage_calls, block_ons = [], [], [], [], []
    for crate in CRATES:
        for dirpath, _, files in os.walk(os.path.join(ROOT, crate)):
            for f in sorted(files):
                if not f.endswith(".rs") or f == "tests.rs":
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)
                text = open(path, encoding="utf-8").read()
                code = strip(text)
                lines = text.count("\n")
                if lines > 500:
                    long_files.append((rel, lines))
                tests = test_spans(code)
                in_test = lambda line: any(a <= line <= b for a, b in tests)
                for name, first, length in functions(code):
                    if length > 80 and not in_test(first):
                        long_fns.append((rel, name, length))
                for i, line in enumerate(code.split("\n")):
                    if in_test(i):
                        continue
                    if re.search(r"\bimpl\s+Repository\b", line) and rel.startswith("crates/repo/src") \
                            and not rel.endswith("crates/repo/src/repository.rs"):
                        impls.append((rel, i + 1))
                    if re.search(r"\bstorage\(?\)?\.\s*(get|put|list|delete|head|replace|get_range|get_versioned|put_content|put_if_absent|exists)\w*\(", line) \
                            and rel.startswith("crates/repo/src") and not rel.startswith(STORAGE_LAYER) \
                            and not rel.endswith("storage.rs"):
                        storage_calls.append((rel, i + 1))
                    if "block_on(" in line and rel.startswith("crates/repo/src") \
                            and not rel.endswith("blocking.rs"):
                        block_ons.append((rel, i + 1))
    report = [
        ("files over 500 lines", long_files),
        ("non-test functions over 80 lines", long_fns),
        ("impl Repository blocks outside repository.rs", impls),
        ("direct storage calls outside the storage layer (crates/repo)", storage_calls),
        ("block_on bridges inside the library", block_ons),
    ]
    for title, items in report:
        print(f"{title}: {len(items)}")
        if listing:
            for item in items:
                print("   ", *item)


if __name__ == "__main__":
    main()
