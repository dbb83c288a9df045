"""Parse PowerShell scripts with tree-sitter-powershell; report syntax errors.

Usage: python tests/deploy/ps_parse.py FILE.ps1 [...]   (exit 1 on any error)
"""

from __future__ import annotations

import sys
from pathlib import Path


def parse_errors(path: Path) -> list[str]:
    """Return one message per ERROR or MISSING node in the script's syntax tree."""
    import tree_sitter
    import tree_sitter_powershell

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    tree = parser.parse(path.read_bytes())
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
