"""Writes the JupyterHub REST API spec as the schemathesis run uses it.

Usage: python reference-spec-fixups.py SPEC.yml OUT.yml

The reference spec (shared/reference/jupyterhub-rest-api.yml, JupyterHub
6) is stricter than JupyterHub itself in a few places: real JupyterHub
6.1.1 sends `null` for fields the spec types as plain strings or objects,
and answers `GET /services` with an object keyed by service name where the
spec says a list. jhub answers as JupyterHub does (clients are written
against JupyterHub, not against the spec), so the run checks it against
the spec with exactly these corrections and nothing else; each one cites
the JupyterHub code that shows the real shape. Everything not listed here
is checked as the spec says.
"""

import copy
import sys

import yaml


def nullable(schema, *fields):
    """Lets `fields` of an object schema also be null."""
    for field in fields:
        prop = schema["properties"][field]
        kind = prop.get("type")
        if isinstance(kind, list):
            if "null" not in kind:
                kind.append("null")
        else:
            prop["type"] = [kind, "null"]
        if "enum" in prop and None not in prop["enum"]:
            prop["enum"].append(None)


def main(src, dst):
    with open(src, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    schemas = spec["components"]["schemas"]

    # apihandlers/base.py user_model: 'server' is None unless running,
    # 'pending' None unless a transition is pending, 'last_activity' is
    # isoformat(None) = None before any activity, 'user_info' is the
    # orm column, None for users created through the API, and
    # 'auth_state' is get_auth_state(), None without encrypted state.
    nullable(schemas["User"], "server", "pending", "last_activity", "user_info", "auth_state")

    # apihandlers/base.py token_model: 'expires_at' and 'last_activity'
    # are isoformat(None) = None for tokens that never expire or were
    # never used.
    for name in ("Token", "NewToken"):
        nullable(schemas[name], "expires_at", "last_activity")

    # apihandlers/services.py ServiceListAPIHandler.get writes a dict
    # {name: model}, not a list.
    listing = spec["paths"]["/services"]["get"]["responses"][200]
    listing["content"]["application/json"]["schema"] = {
        "type": "object",
        "additionalProperties": {"$ref": "#/components/schemas/Service"},
    }

    # apihandlers/users.py SelfAPIHandler.get: for a service token, /user
    # is service_model() of the orm.Service row, whose 'url' is None for a
    # service without a URL and whose 'info' is None (the running
    # service's own model, from /services/{name}, has '' and {}). Only
    # the identity's service branch is relaxed; /services keeps the
    # spec's Service schema.
    identity = copy.deepcopy(schemas["Service"])
    nullable(identity, "url", "info")
    schemas["ServiceIdentity"] = identity
    branches = schemas["RequestIdentity"]["allOf"][0]
    for branch in branches["oneOf"]:
        if branch == {"$ref": "#/components/schemas/Service"}:
            branch["$ref"] = "#/components/schemas/ServiceIdentity"
    branches["discriminator"]["mapping"]["service"] = "#/components/schemas/ServiceIdentity"

    with open(dst, "w", encoding="utf-8") as f:
        yaml.safe_dump(spec, f, sort_keys=False, allow_unicode=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
