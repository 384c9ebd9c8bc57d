"""`python -m runtime.admin`: API keys and webhook secrets, with the same settings as the other processes
(JOBS_* environment and/or JOBS_SSM_PATH; the access table is JOBS_ACCESS_TABLE_NAME / <path>/access-table-name).

  keys create --tenant T [--scopes jobs:read,jobs:write] [--json]
  keys list [--tenant T] [--json]
  keys revoke KEY_ID [--json]
  webhooks rotate-secret --tenant T [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from botocore.exceptions import ClientError

from runtime import aws_clients
from runtime.adapters.dynamodb.access_store import DynamoDbAccessStore, UnknownApiKey
from runtime.admin.access import AccessAdmin, BadKeyId
from runtime.auth.api_keys import ApiKeyInfo, CredentialsUnavailable
from runtime.auth.principal import ALL_SCOPES, TENANT_RULE, InvalidScope, InvalidTenant
from runtime.domain.ports import UtcClock
from runtime.domain.times import iso
from runtime.settings import SettingsError, load_settings

EXIT_OK = 0
EXIT_FAILED = 1  # AWS refused the request (permissions, ...)
EXIT_BAD_INPUT = 2  # bad arguments or configuration (argparse uses 2 as well)
EXIT_NOT_FOUND = 3  # no key with that id
EXIT_UNAVAILABLE = 4  # the access table did not answer

EPILOG = f"""tenant names: {TENANT_RULE}. scopes: {", ".join(ALL_SCOPES)} (jobs:write implies jobs:read).
exit codes: {EXIT_OK} done, {EXIT_BAD_INPUT} bad input or configuration, {EXIT_NOT_FOUND} unknown key id,
{EXIT_UNAVAILABLE} the access table did not answer, {EXIT_FAILED} aws refused the request."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.admin",
        description="API keys and webhook secrets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="{keys,webhooks}")

    keys = groups.add_parser("keys", help="create, list and revoke API keys").add_subparsers(
        dest="action", required=True, metavar="{create,list,revoke}"
    )
    create = keys.add_parser("create", help="a new key for a tenant; its secret is printed once")
    create.add_argument("--tenant", required=True)
    create.add_argument(
        "--scopes", default=",".join(ALL_SCOPES), help=f"comma-separated (default {','.join(ALL_SCOPES)})"
    )
    listing = keys.add_parser("list", help="keys (never their secrets), optionally of one tenant")
    listing.add_argument("--tenant")
    revoke = keys.add_parser("revoke", help="the key stops working within the API's cache bound (30 s default)")
    revoke.add_argument("key_id", metavar="KEY_ID")

    webhooks = groups.add_parser("webhooks", help="per-tenant callback signing secrets").add_subparsers(
        dest="action", required=True, metavar="{rotate-secret}"
    )
    rotate = webhooks.add_parser("rotate-secret", help="a new HMAC secret for the tenant, printed once")
    rotate.add_argument("--tenant", required=True)

    for sub in (create, listing, revoke, rotate):
        sub.add_argument("--json", action="store_true", help="print json instead of text")
    return parser.parse_args(argv)


def _key_document(key: ApiKeyInfo) -> dict[str, Any]:
    return {
        "keyId": key.key_id,
        "tenant": key.tenant,
        "scopes": sorted(key.scopes),
        "createdAt": iso(key.created_at),
        "revokedAt": iso(key.revoked_at) if key.revoked_at else None,
    }


def run(args: argparse.Namespace, admin: AccessAdmin) -> int:
    as_json: bool = args.json
    if (args.group, args.action) == ("keys", "create"):
        created = admin.create_key(args.tenant, args.scopes.split(","))
        info = created.stored.info
        document = {"keyId": info.key_id, "apiKey": created.token, "tenant": info.tenant, "scopes": sorted(info.scopes)}
        if as_json:
            print(json.dumps(document))
        else:
            print(
                f"key id:  {info.key_id}\ntenant:  {info.tenant}\nscopes:  {','.join(sorted(info.scopes))}\n"
                f"api key: {created.token}\n(the api key is shown once; it is stored only as a hash)"
            )
    elif (args.group, args.action) == ("keys", "list"):
        keys = [_key_document(key) for key in admin.list_keys(args.tenant)]
        if as_json:
            print(json.dumps(keys))
        else:
            print(f"{'KEY ID':<18}{'TENANT':<24}{'SCOPES':<22}{'CREATED':<26}REVOKED")
            for key in keys:
                print(
                    f"{key['keyId']:<18}{key['tenant']:<24}{','.join(key['scopes']):<22}{key['createdAt']:<26}"
                    f"{key['revokedAt'] or '-'}"
                )
    elif (args.group, args.action) == ("keys", "revoke"):
        revoked = _key_document(admin.revoke_key(args.key_id))
        print(
            json.dumps(revoked)
            if as_json
            else f"revoked key {revoked['keyId']} of tenant {revoked['tenant']} at {revoked['revokedAt']}"
        )
    else:
        rotated = admin.rotate_webhook_secret(args.tenant)
        if as_json:
            print(json.dumps({"tenant": rotated.tenant, "secret": rotated.secret}))
        else:
            print(
                f"tenant: {rotated.tenant}\nsecret: {rotated.secret}\n(a shared HMAC-SHA256 secret for "
                "Job-Tickets-Signature; shown once here, give it to the tenant)"
            )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"admin: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    store = DynamoDbAccessStore(aws_clients.client("dynamodb", settings), settings.access_table_name)
    try:
        return run(args, AccessAdmin(store, UtcClock()))
    except (InvalidTenant, InvalidScope, BadKeyId) as exc:
        print(f"admin: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnknownApiKey as exc:
        print(f"admin: no key with id {exc.args[0]!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except CredentialsUnavailable as exc:
        print(f"admin: the access table did not answer ({exc})", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"admin: aws refused the request: {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
