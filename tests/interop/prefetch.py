"""What an EHR would send as CDS Hooks prefetch for a patient whose record is an exported Bundle
(the templates of the discovery response, answered from the Bundle), and a small FHIR search
server over the same Bundle, for `fhirServer` reads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

KEYS = {
    "encounters": "Encounter",
    "conditions": "Condition",
    "procedures": "Procedure",
    "observations": "Observation",
    "medications": "MedicationRequest",
    "notes": "DocumentReference",
}


def searchset(resources: list[dict[str, Any]], timestamp: str | None) -> dict[str, Any]:
    b: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if timestamp:
        b["timestamp"] = timestamp
    return b


def prefetch_of(bundle: dict[str, Any]) -> dict[str, Any]:
    res = [e["resource"] for e in bundle["entry"]]
    out: dict[str, Any] = {"patient": next(r for r in res if r["resourceType"] == "Patient")}
    for key, rtype in KEYS.items():
        if key != "notes":
            out[key] = searchset(
                [r for r in res if r["resourceType"] == rtype], bundle.get("timestamp")
            )
    return out


@dataclass
class FhirServer:
    url: str
    token: str
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # path, Authorization


@contextmanager
def fhir_server(
    bundle: dict[str, Any], token: str, page: int = 50, pad: int = 0
) -> Iterator[FhirServer]:
    """`GET /Patient/{id}` and `GET /{Type}?patient={id}` over the Bundle (pages of `page`
    entries with `next` links; `pad` bytes of padding per page, to test size limits); 401
    without the bearer token."""
    res = [e["resource"] for e in bundle["entry"]]
    state = FhirServer("", token)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            state.seen.append((self.path, auth))
            if auth != f"Bearer {token}":
                return self._send(401, {"resourceType": "OperationOutcome", "issue": []})
            parts = urlsplit(self.path)
            path = parts.path.strip("/").split("/")
            if len(path) == 2:
                hit = [r for r in res if r["resourceType"] == path[0] and r["id"] == path[1]]
                return self._send(200, hit[0]) if hit else self._send(404, {})
            q = parse_qs(parts.query)
            matches = [r for r in res if r["resourceType"] == path[0]]
            start = int(q.get("_offset", ["0"])[0])
            body = searchset(matches[start : start + page], bundle.get("timestamp"))
            if start + page < len(matches):
                body["link"] = [
                    {
                        "relation": "next",
                        "url": f"{state.url}/{path[0]}?patient=x&_offset={start + page}",
                    }
                ]
            if pad:
                body["meta"] = {"tag": [{"code": "x" * pad}]}
            self._send(200, body)

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
