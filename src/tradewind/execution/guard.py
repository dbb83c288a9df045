"""The start-up check that keeps a deployment from trading on a venue it did not mean.

Real exchange keys mounted next to ``venue: paper`` mean an operator expects
live trading that will never happen; a live venue without keys cannot send an
order. Both refuse to start. The first can be acknowledged with
``TRADEWIND_EXECUTION__ALLOW_PAPER_WITH_KEYS=true`` (keys kept mounted while a
deployment is tried on paper); the second cannot, since nothing would work.
Compose's ``make secrets`` writes ``paper-no-key`` into the key files, and the
Kubernetes guide uses the same marker: it counts as no key.
"""

from __future__ import annotations

from pydantic import SecretStr

from tradewind.config import ExecutionSettings

NO_KEY_MARKERS = frozenset({"", "paper", "paper-no-key"})


def has_real_key(value: SecretStr | None) -> bool:
    return value is not None and value.get_secret_value().strip().lower() not in NO_KEY_MARKERS


PASSPHRASE_VENUES = frozenset({"okx"})
"""ccxt ids whose keys come with a passphrase (ccxt's ``password``)."""


def keys_present(settings: ExecutionSettings) -> bool:
    """Both halves of a key pair are set to something other than a no-key marker."""
    return has_real_key(settings.api_key) and has_real_key(settings.api_secret)


def venue_problem(settings: ExecutionSettings) -> str | None:
    """The one-line reason execution must not start, or None."""
    if settings.venue == "paper":
        if (
            has_real_key(settings.api_key) or has_real_key(settings.api_secret)
        ) and not settings.allow_paper_with_keys:
            return (
                "exchange API keys are mounted but TRADEWIND_EXECUTION__VENUE is 'paper', so "
                "no order would reach the exchange; set TRADEWIND_EXECUTION__VENUE to the live "
                "venue, or replace the keys with 'paper-no-key', or set "
                "TRADEWIND_EXECUTION__ALLOW_PAPER_WITH_KEYS=true to run on paper anyway"
            )
        return None
    if not keys_present(settings):
        return (
            f"TRADEWIND_EXECUTION__VENUE is {settings.venue!r} but no exchange API key and "
            "secret are mounted (TRADEWIND_EXECUTION__API_KEY_FILE / API_SECRET_FILE hold "
            "nothing or 'paper-no-key'); mount real keys, or set the venue to 'paper'"
        )
    if (
        settings.venue == "ccxt"
        and settings.ccxt_id in PASSPHRASE_VENUES
        and not has_real_key(settings.api_passphrase)
    ):
        return (
            f"ccxt {settings.ccxt_id} keys come with a passphrase, and none is mounted "
            "(TRADEWIND_EXECUTION__API_PASSPHRASE_FILE holds nothing); mount the API key's "
            "passphrase"
        )
    return None


def network_problem(settings: ExecutionSettings) -> str | None:
    """A live venue must be told test network or real money in so many words:
    a default either way would let a testnet key meant for trying things out
    reach mainnet (refused, at best) or a mainnet run quietly trade on testnet."""
    if settings.venue == "paper" or "testnet" in settings.model_fields_set:
        return None
    return (
        f"TRADEWIND_EXECUTION__TESTNET is not set for the live venue {settings.venue!r}: set it "
        "to true (the exchange's test network) or false (real money), or pass "
        "--network testnet|mainnet"
    )
