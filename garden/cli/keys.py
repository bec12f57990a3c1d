"""``garden keys create | list | limits``: API keys and their limits (admins)."""

from __future__ import annotations

import json

import typer

from garden.cli.output import api, api_errors, console, print_table
from garden.client.keys import UNSET

keys_app = typer.Typer(help="API keys (admins create them).", no_args_is_help=True)


def _limit(value: int | None) -> int | None:
    """A CLI limit: 0 means no limit (the API's null); None leaves it out."""
    return None if value == 0 else value


@keys_app.command("create")
def keys_create(
    ctx: typer.Context, user_id: str, name: str = typer.Option("cli"),
    role: str = typer.Option("user", help="user or admin"),
    rpm: int | None = typer.Option(None, "--rpm", min=1, help="Requests per minute."),
    tpm: int | None = typer.Option(None, "--tpm", min=1, help="Tokens per minute."),
    budget: int | None = typer.Option(None, "--budget", min=1,
                                      help="Tokens in the key's lifetime."),
) -> None:
    """Admin: create a key for USER_ID (optionally limited); the secret is printed once."""
    with api_errors():
        record, secret = api(ctx).keys.create(user_id, name, role, rpm_limit=rpm,
                                              tpm_limit=tpm, token_budget=budget)
    console.print(json.dumps({"id": record.id, "user_id": record.user_id,
                              "role": str(record.role), "rpm_limit": record.rpm_limit,
                              "tpm_limit": record.tpm_limit,
                              "token_budget": record.token_budget, "secret": secret}))


@keys_app.command("limits")
def keys_limits(
    ctx: typer.Context, key_id: str,
    rpm: int | None = typer.Option(None, "--rpm", min=0,
                                   help="Requests per minute (0: no limit)."),
    tpm: int | None = typer.Option(None, "--tpm", min=0, help="Tokens per minute (0: no limit)."),
    budget: int | None = typer.Option(None, "--budget", min=0,
                                      help="Tokens in the key's lifetime (0: no limit)."),
) -> None:
    """Admin: set or clear (0) KEY_ID's limits; limits not given keep their value."""
    changes = {name: _limit(value) for name, value in
               (("rpm_limit", rpm), ("tpm_limit", tpm), ("token_budget", budget))
               if value is not None}
    with api_errors():
        key = api(ctx).keys.set_limits(
            key_id, **{k: changes.get(k, UNSET) for k in ("rpm_limit", "tpm_limit",
                                                          "token_budget")})
    print_table("key", ["id", "user", "rpm", "tpm", "budget", "tokens used"],
                [[key.id, key.user_id, key.rpm_limit, key.tpm_limit, key.token_budget,
                  key.tokens_used]])


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    with api_errors():
        page = api(ctx).keys.list()
    print_table("keys", ["id", "user", "name", "prefix", "role", "rpm", "tpm", "budget",
                         "tokens used"],
                [[k.id, k.user_id, k.name, k.prefix, k.role, k.rpm_limit, k.tpm_limit,
                  k.token_budget, k.tokens_used] for k in page.items], page.total)
