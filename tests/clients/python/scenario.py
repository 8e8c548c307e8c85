"""Drives the API through a client openapi-python-client 0.29.1 generated
from the server's own OpenAPI document, with the generated functions only.

Usage: python scenario.py BASE_URL TOKEN PACKAGE [--rate-limited]

PACKAGE is the generated package (`.../app_client`) or the project folder
the generator wrote around it (`.../app-client`). Prints `ok: STEP` for each
step; on the first failure prints `FAIL: STEP: why` and exits 1. With
--rate-limited, every response must carry `RateLimit` (the server was
started with --rate-limit-read and --rate-limit-write).

Response headers are not typed by openapi-python-client: ETag, Location and
RateLimit are read from `response.headers`.
"""

import argparse
import importlib
import sys
import traceback
import uuid
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path
from types import SimpleNamespace

# The package name openapi-python-client derives from the document's title, "app".
PACKAGE = "app_client"
# A port id no test creates: naming it makes a laptop invalid.
UNKNOWN_PORT_ID = 2**62


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


@contextmanager
def step(name):
    try:
        yield
    except Exception as error:  # noqa: BLE001 - any error fails the step, by name
        detail = str(error) if isinstance(error, Failure) else f"{type(error).__name__}: {error}"
        print(f"FAIL: {name}: {detail}", file=sys.stderr)
        if not isinstance(error, Failure):
            traceback.print_exc(limit=-3, file=sys.stderr)
        sys.exit(1)
    print(f"ok: {name}", flush=True)


def load_client(path):
    """Imports the generated package and the modules the scenario calls."""
    path = Path(path).resolve()
    if not (path / "__init__.py").exists():
        path = path / PACKAGE
    check((path / "__init__.py").exists(), f"no generated package at {path}")
    sys.path.insert(0, str(path.parent))
    name = path.name

    def module(suffix):
        return importlib.import_module(f"{name}.{suffix}")

    api = {
        op: module(f"api.{tag}.{op}")
        for tag, ops in {
            "ports": ["create_port", "delete_port"],
            "laptops": ["create_laptop", "get_laptop", "list_laptops", "patch_laptop", "delete_laptop"],
        }.items()
        for op in ops
    }
    models = module("models")
    return SimpleNamespace(client=module("client"), types=module("types"), models=models, **api)


class Scenario:
    def __init__(self, gen, base_url, token, rate_limited):
        self.gen = gen
        self.m = gen.models
        self.client = gen.client.AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)
        self.rate_limited = rate_limited
        self.tag = f"clients-py-{uuid.uuid4().hex[:12]}"

    def expect(self, response, status, model=None):
        """Checks status, parsed model and the headers every response carries."""
        got = HTTPStatus(response.status_code)
        check(got == status, f"expected {status.value}, got {got.value}: {response.content[:300]!r}")
        if model is not None:
            check(
                isinstance(response.parsed, model),
                f"parsed as {type(response.parsed).__name__}, expected {model.__name__}",
            )
        if self.rate_limited:
            check("RateLimit" in response.headers, f"no RateLimit header on {got.value}")
            check("RateLimit-Policy" in response.headers, f"no RateLimit-Policy header on {got.value}")
        return response.parsed

    @staticmethod
    def header(response, name):
        value = response.headers.get(name)
        check(value, f"no {name} header on {response.status_code}")
        return value

    def create_laptop(self, port_ids, title=None):
        body = self.m.LaptopWrite(title=title or self.tag, model="Scenario", port_ids=port_ids)
        response = self.gen.create_laptop.sync_detailed(client=self.client, body=body)
        laptop = self.expect(response, HTTPStatus.CREATED, self.m.Laptop)
        location = self.header(response, "Location")
        check(
            location.endswith(f"/api/v1/laptops/{laptop.id}"), f"Location {location} does not name laptop {laptop.id}"
        )
        return laptop, self.header(response, "ETag")

    def run(self):
        gen, m, client = self.gen, self.m, self.client

        with step("create port 201"):
            response = gen.create_port.sync_detailed(client=client, body=m.PortWrite(name=self.tag))
            port = self.expect(response, HTTPStatus.CREATED, m.Port)
            check(self.header(response, "Location").endswith(f"/api/v1/ports/{port.id}"), "Location names another port")
            self.header(response, "ETag")

        with step("create laptop 201"):
            laptop, created_etag = self.create_laptop([port.id])
            check(laptop.port_ids == [port.id], f"port_ids {laptop.port_ids}, expected [{port.id}]")

        with step("get laptop 200"):
            response = gen.get_laptop.sync_detailed(laptop.id, client=client)
            read = self.expect(response, HTTPStatus.OK, m.Laptop)
            etag = self.header(response, "ETag")
            check(etag == created_etag, f"ETag {etag} differs from the one create sent, {created_etag}")
            check(read.id == laptop.id and read.title == self.tag, f"read {read!r}")

        with step("get laptop expand=ports 200"):
            response = gen.get_laptop.sync_detailed(laptop.id, client=client, expand=m.GetLaptopExpand.PORTS)
            expanded = self.expect(response, HTTPStatus.OK, m.Laptop)
            ports = expanded.ports
            check(isinstance(ports, list) and len(ports) == 1, f"ports {ports!r}, expected one")
            check(isinstance(ports[0], m.PortRef), f"ports[0] is {type(ports[0]).__name__}, expected PortRef")
            check((ports[0].id, ports[0].name) == (port.id, port.name), f"ports[0] {ports[0]!r}, expected {port!r}")

        with step("list laptops, every page, limit=2"):
            ids = {laptop.id} | {self.create_laptop([])[0].id for _ in range(5)}
            seen, pages, cursor = [], 0, self.gen.types.UNSET
            while True:
                response = gen.list_laptops.sync_detailed(client=client, limit=2, title=self.tag, cursor=cursor)
                page = self.expect(response, HTTPStatus.OK, m.PageLaptop)
                pages += 1
                check(len(page.items) <= 2, f"page {pages} has {len(page.items)} items, limit was 2")
                for item in page.items:
                    check(
                        isinstance(item, m.Laptop),
                        f"page item is {type(item).__name__}, not Laptop: the document inlines Page_Laptop's items",
                    )
                    seen.append(item.id)
                if not page.next_cursor:
                    break
                check(pages < 10, "more than 10 pages for 6 laptops")
                cursor = page.next_cursor
            check(sorted(seen) == sorted(ids), f"pages held {sorted(seen)}, expected {sorted(ids)}")
            check(pages >= 3, f"{pages} pages for 6 laptops at 2 a page")

        with step("conditional patch 200"):
            response = gen.patch_laptop.sync_detailed(
                laptop.id, client=client, body=m.LaptopPatch(model="Scenario, patched"), if_match=etag
            )
            patched = self.expect(response, HTTPStatus.OK, m.Laptop)
            check(patched.model == "Scenario, patched", f"model {patched.model!r} after the patch")
            stale, etag = etag, self.header(response, "ETag")
            check(etag != stale, f"ETag {etag} unchanged by the patch")

        with step("conditional patch 412"):
            response = gen.patch_laptop.sync_detailed(
                laptop.id, client=client, body=m.LaptopPatch(model="lost update"), if_match=stale
            )
            problem = self.expect(response, HTTPStatus.PRECONDITION_FAILED, m.Problem)
            check(problem.status == 412, f"problem status {problem.status}")

        with step("conditional get 304"):
            response = gen.get_laptop.sync_detailed(laptop.id, client=client, if_none_match=etag)
            self.expect(response, HTTPStatus.NOT_MODIFIED)
            check(response.content == b"", f"304 with a body: {response.content[:100]!r}")
            check(self.header(response, "ETag") == etag, "304 sent another ETag")

        with step("create invalid laptop 422"):
            body = m.LaptopWrite(title=" ", model="Scenario", port_ids=[UNKNOWN_PORT_ID])
            response = gen.create_laptop.sync_detailed(client=client, body=body)
            problem = self.expect(response, HTTPStatus.UNPROCESSABLE_ENTITY, m.Problem)
            check(problem.status == 422, f"problem status {problem.status}")
            errors = problem.errors
            check(isinstance(errors, list) and errors, f"errors {errors!r}, expected a list")
            check(all(isinstance(e, m.FieldError) for e in errors), "an error is not a FieldError")
            fields = {e.field for e in errors}
            check("title" in fields, f"errors name {sorted(fields)}, expected title")

        with step("create laptop naming an unknown port 422"):
            response = gen.create_laptop.sync_detailed(
                client=client, body=m.LaptopWrite(title=self.tag, model="Scenario", port_ids=[UNKNOWN_PORT_ID])
            )
            problem = self.expect(response, HTTPStatus.UNPROCESSABLE_ENTITY, m.Problem)
            fields = [e.field for e in problem.errors or []]
            check(fields == ["port_ids"], f"errors name {fields}, expected port_ids")

        with step("conditional delete 204"):
            response = gen.delete_laptop.sync_detailed(laptop.id, client=client, if_match=etag)
            self.expect(response, HTTPStatus.NO_CONTENT)

        with step("get deleted laptop 404"):
            response = gen.get_laptop.sync_detailed(laptop.id, client=client)
            problem = self.expect(response, HTTPStatus.NOT_FOUND, m.Problem)
            check(problem.status == 404, f"problem status {problem.status}")

        with step("clean up"):
            for id in ids - {laptop.id}:
                self.expect(gen.delete_laptop.sync_detailed(id, client=client), HTTPStatus.NO_CONTENT)
            self.expect(gen.delete_port.sync_detailed(port.id, client=client), HTTPStatus.NO_CONTENT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("package", help="the generated package, or the folder holding it")
    parser.add_argument("--rate-limited", action="store_true", help="require RateLimit on every response")
    args = parser.parse_args()
    with step("import generated client"):
        gen = load_client(args.package)
    Scenario(gen, args.base_url.rstrip("/"), args.token, args.rate_limited).run()


if __name__ == "__main__":
    main()
