"""The local gateway's paths, as API Gateway treats them: routed on the raw path with each segment decoded once,
and escaped before they reach a log line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from inferstack.topology import Route


@dataclass(frozen=True)
class CompiledRoute:
    route: Route
    #: The path's segments: a literal, or `{param}`.
    segments: tuple[str, ...]
    params: tuple[str, ...]
    static_segments: int

    def match(self, decoded: list[str]) -> dict[str, str] | None:
        if len(decoded) != len(self.segments):
            return None
        params = {}
        for want, got in zip(self.segments, decoded, strict=True):
            if want.startswith("{"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


def compile_routes(routes: list[Route]) -> list[CompiledRoute]:
    out = []
    for r in routes:
        segments = tuple(r.path.split("/"))
        params = tuple(re.findall(r"{(\w+)}", r.path))
        static = sum(1 for s in segments if s and not s.startswith("{"))
        out.append(CompiledRoute(r, segments, params, static))
    # API Gateway prefers static path parts over {params}: most static segments first.
    return sorted(out, key=lambda c: -c.static_segments)


def match_route(table: list[CompiledRoute], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route of a request's *raw* (still percent-encoded) path, each segment decoded once, as API Gateway
    does: `%2569ris` is the name `%69ris`, never `iris`; `%69ris` is `iris`; `%2F` stays inside its segment."""
    decoded = [unquote(segment) for segment in path.split("/")]
    for compiled in table:
        if compiled.match(decoded) is not None:
            # The most specific resource matched; a method it lacks is a 403, as on API Gateway.
            for same in table:
                if same.route.path == compiled.route.path and same.route.method == method:
                    return same.route, compiled.match(decoded) or {}
            return None
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with its control characters escaped (`\\r`, `\\x1b`): what a client sent cannot forge log lines."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
