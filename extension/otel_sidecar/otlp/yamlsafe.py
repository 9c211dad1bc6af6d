"""YAML with bounds: a config file cannot cost more than a bounded amount of CPU, memory or output.

safe_load(text) -> (document, None) or (None, one short reason). Refused before or while parsing:
- more than MAX_BYTES of text (checked before the parser starts);
- nesting deeper than MAX_DEPTH (checked as nodes are composed, so a 20,000-deep `[[[...` stops at 100);
- more than MAX_ALIASES aliases, or a document that would expand to more than MAX_NODES nodes once its
  aliases are followed ("billion laughs": 512 bytes that expand to 10^9 nodes are refused at 10^4), or an
  alias to a node that contains it (recursive).
The reason names the problem and its line/column, never the document's text (a value may be a secret).
Imported lazily (PyYAML is pure Python in the layer).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import yaml
from yaml.events import AliasEvent

MAX_BYTES = 64 * 1024
MAX_DEPTH = 100
MAX_ALIASES = 100
MAX_NODES = 10_000


class Refused(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting depth, aliases and the nodes a document expands to."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._expanded = 0
        self._sizes: Dict[str, int] = {}     # anchor -> nodes under it, aliases followed

    def _grow(self, n: int, mark: Any) -> None:
        self._expanded += n
        if self._expanded > MAX_NODES:
            raise Refused(f"the document expands to more than {MAX_NODES} nodes (aliases followed)", mark)

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
        # the scanner looks up to 1,024 characters ahead for a simple key at every flow level, a cost that
        # grows with the square of the depth: stop the flow nesting here, before the composer sees it
        if self.flow_level >= MAX_DEPTH:
            raise Refused(f"nested deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise Refused(f"more than {MAX_ALIASES} aliases", event.start_mark)
            if event.anchor in self.anchors and event.anchor not in self._sizes:
                raise Refused("an alias to a node that contains it (recursive)", event.start_mark)
            node = super().compose_node(parent, index)     # an undefined alias raises here
            self._grow(self._sizes.get(event.anchor, 1), event.start_mark)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        before = self._expanded
        self._grow(1, event.start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        anchor = getattr(event, "anchor", None)
        if anchor:
            self._sizes[anchor] = self._expanded - before
        return node


def safe_load(text: str) -> Tuple[Any, Optional[str]]:
    """(document, None) or (None, reason); never raises for any text."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        return None, f"the file is {size} bytes, more than the {MAX_BYTES} allowed"
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data(), None
    except yaml.YAMLError as exc:
        return None, reason(exc)
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        return None, f"cannot be parsed ({type(exc).__name__})"
    finally:
        loader.dispose()


def reason(exc: BaseException) -> str:
    """What went wrong and where, without the document's text (PyYAML quotes a snippet of it)."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    text = " ".join(str(problem).split())
    if len(text) > 120:
        text = text[:119] + "…"
    return f"{text}{where}"
