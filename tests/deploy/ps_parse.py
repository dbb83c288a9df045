"""Parse PowerShell scripts with tree-sitter-powershell; report syntax errors,
and read the calls of one command (the kubectl call plan) out of the tree.

Usage: python tests/deploy/ps_parse.py FILE.ps1 [...]   (exit 1 on any error)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

_VAR = re.compile(r"\$\([^()]*\)|\$\{[^}]*\}|\$\w+")


def normalize(word: str) -> str:
    """One argument as both languages compare it: quotes off, anything computed
    (a variable, a splat, a sub-expression) as ``$``, ``--flag=$`` kept."""
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"":
        word = word[1:-1]
    if word.startswith(("(", "@")) or "$" in word:
        m = re.match(r"(--[\w-]+=)", word)
        return (m.group(1) if m else "") + "$"
    return word


def template(text: str) -> str:
    """A message with each interpolated variable as ``$``."""
    return _VAR.sub("$", text)


def _tree(path: Path) -> Any:
    import tree_sitter
    import tree_sitter_powershell

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    return parser.parse(path.read_bytes())


def command_calls(path: Path, name: str) -> list[list[str]]:
    """The arguments of every call of command ``name``, in source order."""
    calls: list[list[str]] = []
    stack = [_tree(path).root_node]
    found = []
    while stack:
        node = stack.pop()
        if node.type == "command":
            cmd = node.child_by_field_name("command_name") or node.children[0]
            if cmd.type == "command_name" and cmd.text.decode().lower() == name.lower():
                found.append(node)
        stack.extend(reversed(node.children))
    for node in sorted(found, key=lambda n: n.start_byte):
        words = []
        for el in node.children:
            if el.type != "command_elements":
                continue
            for arg in el.children:
                if arg.type != "command_argument_sep":
                    words.append(arg.text.decode())
        calls.append(words)
    return calls


def parse_errors(path: Path) -> list[str]:
    """Return one message per ERROR or MISSING node in the script's syntax tree."""
    tree = _tree(path)
    errors: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            row, col = node.start_point
            kind = "missing" if node.is_missing else "syntax error"
            errors.append(f"{path}:{row + 1}:{col + 1}: {kind} near {node.type!r}")
        elif node.has_error:
            stack.extend(node.children)
    return sorted(errors)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    for name in argv:
        errors = parse_errors(Path(name))
        for e in errors:
            print(e, file=sys.stderr)
        failed += bool(errors)
        if not errors:
            print(f"{name}: parses")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
