"""The console's files over plain HTTP (``requests`` and ``http.client``, no browser): the strict
Content-Security-Policy and the other security headers on every file, the page and its scripts
free of inline code and inline styles (which that policy would block), exact file names only
(404 for anything else, no way out of the embedded files), GET only."""

from __future__ import annotations

import http.client
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from fcdkit import FcdServer

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def directives(policy: str) -> dict[str, str]:
    out = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = " ".join(words[1:])
    return out


def assert_security_headers(resp: requests.Response) -> None:
    csp = resp.headers.get("Content-Security-Policy")
    assert csp, f"{resp.url}: no Content-Security-Policy ({dict(resp.headers)})"
    assert directives(csp) == directives(CSP), f"{resp.url}: CSP is {csp!r}"
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", resp.headers
    assert resp.headers.get("Referrer-Policy") == "no-referrer", resp.headers
    assert "Set-Cookie" not in resp.headers, resp.headers


class PageParser(HTMLParser):
    """Collects what a strict CSP cares about in one HTML document."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []  # src of each external script
        self.inline_scripts: list[str] = []  # code of each inline script
        self.styles: list[str] = []  # href of each stylesheet
        self.problems: list[str] = []
        self._in_script = False
        self._script_src = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"<{tag} style={value!r}>")
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}={value!r}> (inline event handler)")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "style":
            self.problems.append("<style> element (inline style)")
        if tag == "script":
            self._in_script = True
            self._script_src = a.get("src")
            if a.get("src"):
                self.scripts.append(a["src"])
        if tag == "link" and "stylesheet" in (a.get("rel") or "").lower().split():
            self.styles.append(a.get("href") or "")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts.append(data.strip()[:200])


# Module imports in the page's scripts: `import … from "./x.js"`, `import "./x.js"`, `import("./x.js")`.
IMPORT_RE = re.compile(r"""(?:\bimport\b[^"'`;()]*?\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+\.js)["']""")
# A style attribute written in markup a script builds, or set as an attribute.
STYLE_IN_MARKUP_RE = re.compile(r"""<[a-zA-Z][^<>]*\sstyle\s*=""")
SET_STYLE_ATTR_RE = re.compile(r"""setAttribute\(\s*["']style["']""")
HANDLER_IN_MARKUP_RE = re.compile(r"""<[a-zA-Z][^<>]*\son[a-z]+\s*=""")


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=10, allow_redirects=False)


def test_page_and_every_file_it_loads_have_strict_headers_and_nothing_inline(fcd: FcdServer):
    base = f"http://{fcd.addr}"
    page = get(base + "/console")
    assert page.status_code == 200, page.status_code
    assert page.headers.get("Content-Type", "").startswith("text/html"), page.headers
    assert "no-store" in page.headers.get("Cache-Control", ""), page.headers
    assert_security_headers(page)
    # The same page at /console/.
    slash = get(base + "/console/")
    assert slash.status_code == 200 and slash.text == page.text
    assert_security_headers(slash)

    parser = PageParser()
    parser.feed(page.text)
    assert not parser.inline_scripts, f"inline <script> code: {parser.inline_scripts}"
    assert not parser.problems, parser.problems
    assert parser.scripts, "the page loads no script"
    assert parser.styles, "the page loads no stylesheet"

    # Every script (and the modules they import) and stylesheet, as the browser resolves them
    # from the page at /console.
    seen: set[str] = set()
    queue = [(urljoin(page.url, s), "script") for s in parser.scripts]
    queue += [(urljoin(page.url, s), "style") for s in parser.styles]
    while queue:
        url, kind = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        assert urlsplit(url).netloc == fcd.addr, f"{url}: not this origin"
        assert urlsplit(url).path.startswith("/console/"), f"{url}: not a console file"
        resp = get(url)
        assert resp.status_code == 200, f"{url}: {resp.status_code}"
        assert_security_headers(resp)
        ctype = resp.headers.get("Content-Type", "")
        if kind == "script":
            assert re.match(r"(text|application)/javascript", ctype), f"{url}: {ctype}"
            code = resp.text
            for rx, what in (
                (STYLE_IN_MARKUP_RE, "a style= attribute in markup"),
                (SET_STYLE_ATTR_RE, "setAttribute('style')"),
                (HANDLER_IN_MARKUP_RE, "an inline on*= handler in markup"),
            ):
                m = rx.search(code)
                assert not m, f"{url}: {what}: {code[max(0, m.start() - 80):m.end() + 80]!r}"
            assert "<script" not in code.lower(), f"{url} writes a <script> element"
            assert not re.search(r"\beval\s*\(|\bnew\s+Function\s*\(", code), f"{url} evaluates strings"
            queue += [(urljoin(url, spec), "script") for spec in IMPORT_RE.findall(code)]
        else:
            assert ctype.startswith("text/css"), f"{url}: {ctype}"
            assert not re.search(r"https?://", resp.text), f"{url} loads from another origin"
    assert len(seen) >= 2, seen


def raw(fcd: FcdServer, method: str, path: str) -> tuple[int, dict]:
    """A request with ``path`` sent byte for byte (no client-side normalising of ``..``)."""
    host, port = fcd.addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status, dict(resp.getheaders())
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path, statuses",
    [
        # One segment under /console/ is the console's: a name it does not have is a 404.
        ("/console/no-such-file.js", (404,)),
        ("/console/%2e%2e", (404,)),
        ("/console/..%2fCargo.toml", (404,)),
        ("/console/console.JS", (404,)),
        # Anything deeper is not the console's at all: the signed API's front door refuses it.
        ("/console/../Cargo.toml", (403, 404)),
        ("/console/%2e%2e/Cargo.toml", (403, 404)),
        ("/console/sub/console.js", (403, 404)),
        ("/console//console.js", (403, 404)),
        ("/console/console.js/", (403, 404)),
    ],
)
def test_only_exact_file_names_are_served(fcd: FcdServer, path: str, statuses: tuple[int, ...]):
    status, _ = raw(fcd, "GET", path)
    assert status in statuses, f"GET {path}: {status}"


def test_the_console_takes_gets_only(fcd: FcdServer):
    for method in ("POST", "PUT", "DELETE"):
        status, _ = raw(fcd, method, "/console")
        assert status == 405, f"{method} /console: {status}"


def test_the_api_still_wants_a_signature(fcd: FcdServer):
    """Serving the console unsigned opens nothing else: an unsigned API call is refused."""
    resp = get(f"http://{fcd.addr}/2021-04-06/services")
    assert resp.status_code in (401, 403), resp.status_code
    assert resp.json().get("ErrorCode"), resp.text
