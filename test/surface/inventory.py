#!/usr/bin/env python3
"""The names `import stichotrope;` exports, read from the module units, and
docs/architecture.md's list of them ("Every exported name"): the test fails
when a name is exported without a line in the list, or listed without being
exported.

    inventory.py SOURCE_DIR          check (exit 1 with the differences)
    inventory.py SOURCE_DIR --print  the inventory, one qualified name a line

A name is exported when its declaration is inside an `export namespace`
block or begins with `export`. Only namespace-scope names count (a class's
members come with it). The reader knows this code base's C++: comments,
strings and the preprocessor are dropped, then declarations are split at
`;` and at braces, with a stack of the namespaces, classes and bodies they
are in.
"""
import os
import re
import sys

TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<number>\d[\w.']*)
  | (?P<punct>::|->|<<=|>>=|<=>|<<|>>|&&|\|\||[-+*/%^&|!=<>]=|[{}()\[\];,<>=~!%^&*+\-/|.?:#])
""", re.VERBOSE)


def strip(text):
    """Comments, string and character literals and preprocessor lines out."""
    out, i, n = [], 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            while i < n and text[i] != "\n":
                i += 2 if text[i] == "\\" else 1
            continue
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        if c == 'R' and text.startswith('R"', i):
            end = text.index("(", i)
            delim = ")" + text[i + 2:end] + '"'
            i = text.index(delim, end) + len(delim)
            out.append('""')
            continue
        if c in "\"'" and not (c == "'" and i > 0 and text[i - 1].isalnum()):
            j = i + 1
            while text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            out.append('""')
            continue
        if c == "\n":
            at_line_start = True
        elif not c.isspace():
            at_line_start = False
        out.append(c)
        i += 1
    return "".join(out)


def tokens(text):
    for m in TOKEN.finditer(text):
        if m.lastgroup != "space":
            yield m.group()


def declared_name(decl):
    """The name a namespace-scope declaration introduces, or None."""
    t = list(decl)
    while t and t[0] in ("export", "inline", "constexpr", "consteval", "constinit", "static", "extern",
                         "thread_local"):
        t = t[1:]
    if t and t[0] == "template":  # skip the parameter list
        depth, k = 0, 1
        for k in range(1, len(t)):
            depth += {"<": 1, ">": -1, ">>": -2}.get(t[k], 0)
            if depth <= 0:
                break
        t = t[k + 1:]
    # attributes
    while len(t) > 1 and t[0] == "[" and t[1] == "[":
        k = t.index("]")
        t = t[k + 2:]
    if not t:
        return None
    if t[0] in ("using", "namespace") and len(t) > 1:
        return t[1] if t[1] != "namespace" else None
    if t[0] == "concept":
        return t[1]
    if t[0] in ("struct", "class", "union", "enum"):
        k = 1
        if k < len(t) and t[k] in ("class", "struct"):
            k += 1
        while k < len(t) and (t[k] == "alignas" or t[k:k + 2] == ["[", "["]):
            k = t.index(")", k) + 1 if t[k] == "alignas" else t.index("]", k) + 2
        return t[k] if k < len(t) else None
    # a function or a variable: the name before the first '(' (or '=', '{')
    depth = 0
    for k, tok in enumerate(t):
        if tok in ("<",):
            depth += 1
        elif tok in (">", ">>"):
            depth -= 1 if tok == ">" else 2
        elif depth <= 0 and tok in ("(", "=", "{"):
            if k >= 2 and t[k - 2] == "operator":
                return "operator" + t[k - 1]
            if k >= 1 and t[k - 1] == "operator":
                return None
            if k >= 2 and t[k - 2] == "::":
                return None  # a member defined out of its class: it comes with the class
            return t[k - 1] if k >= 1 and re.match(r"[A-Za-z_]\w*$", t[k - 1]) else None
    return t[-1] if re.match(r"[A-Za-z_]\w*$", t[-1]) else None


def exported_names(path):
    text = strip(open(path, encoding="utf-8").read())
    names = set()
    stack = [("ns", "", False)]  # scopes: (kind "ns" or "other", namespace name, exported)
    opened = []  # how many scopes each open brace pushed
    decl = []
    parens = 0  # inside a declaration's parentheses, braces are default arguments, not scopes
    for tok in tokens(text):
        kind, _, exported = stack[-1]
        if kind == "ns" and (parens > 0 or tok in "()"):
            parens += {"(": 1, ")": -1}.get(tok, 0)
            decl.append(tok)
            continue
        if tok == "{":
            pushed = 1
            if kind == "ns":
                is_export = bool(decl) and decl[0] == "export"
                body = decl[1:] if is_export else decl
                if body and body[0] == "namespace":
                    parts = [x for x in body[1:] if x != "::"]
                    for p in parts:
                        stack.append(("ns", p, exported or is_export))
                    opened.append(len(parts))
                    decl = []
                    continue
                name = declared_name(decl)
                if name and (exported or is_export):
                    names.add(qualified(stack, name))
            stack.append(("other", "", False))
            opened.append(pushed)
            decl = []
        elif tok == "}":
            for _ in range(opened.pop()):
                stack.pop()
            decl = []
        elif tok == ";":
            if kind == "ns" and decl and decl[0] not in ("module", "import") and decl[:2] not in (
                    ["export", "module"], ["export", "import"]):
                name = declared_name(decl)
                if name and (exported or decl[0] == "export") and "friend" not in decl:
                    names.add(qualified(stack, name))
            decl = []
        elif kind == "ns":
            decl.append(tok)
    return names


def qualified(stack, name):
    parts = [s[1] for s in stack if s[0] == "ns" and s[1]]
    return "::".join(parts + [name])


def documented(doc):
    """The names in docs/architecture.md's "Every exported name" section:
    every `code` span of its list."""
    text = open(doc, encoding="utf-8").read()
    m = re.search(r"^## Every exported name\n(.*?)(?=^## )", text, re.M | re.S)
    if not m:
        raise SystemExit(f"{doc}: no section '## Every exported name'")
    names = set()
    for line in m.group(1).splitlines():
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| partition"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 2:
            continue
        prefix = cells[1].strip("`")
        for n in re.findall(r"`([^`]+)`", cells[2] if len(cells) > 2 else ""):
            names.add(f"{prefix}::{n}" if prefix else n)
    return names


def main():
    root = sys.argv[1]
    inventory = set()
    for f in sorted(os.listdir(os.path.join(root, "modules"))):
        if f.endswith(".cppm"):
            inventory |= exported_names(os.path.join(root, "modules", f))
    if "--print" in sys.argv:
        for n in sorted(inventory):
            print(n)
        return 0
    listed = documented(os.path.join(root, "docs", "architecture.md"))
    missing, stale = sorted(inventory - listed), sorted(listed - inventory)
    for n in missing:
        print(f"exported without a line in docs/architecture.md: {n}")
    for n in stale:
        print(f"listed in docs/architecture.md, not exported: {n}")
    print(f"{len(inventory)} exported names, {len(listed)} listed")
    return 1 if missing or stale else 0


if __name__ == "__main__":
    sys.exit(main())
