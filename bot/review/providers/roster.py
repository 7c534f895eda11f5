"""The run's models: tiers resolved once against the API's models list, the models found gone
during the run, and the next model when one is (same tier, then the next tier).

The resolution itself is bot/review/providers/resolve.py; this module decides where the list
comes from (the list file beside the review cache while fresh, else the API, else a stale
list or the built-in lineup) and keeps the run's view of it consistent across threads.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import date
from pathlib import Path

from google.genai import errors as genai_errors

from bot.errors import ProviderError
from bot.review.providers.client import GeminiClient
from bot.review.providers.failures import TRANSPORT_ERRORS, is_auth_error
from bot.review.providers.resolve import ModelsListFile, endpoint_id, plan
from bot.review.types import ModelPlan

log = logging.getLogger(__name__)


class ModelRoster:
    def __init__(self, client: GeminiClient, endpoint: str | None, ttl_s: int, today: date):
        self._client = client
        self._endpoint = endpoint  # the configured base URL: the list file is per endpoint
        self._ttl_s = ttl_s
        self.today = today
        self.plan: ModelPlan | None = None
        # (tiers, fallback) while the plan rests on the restored models list (a hint only).
        self._replan: tuple[dict[str, str], list[str]] | None = None
        self._replan_lock = threading.Lock()
        self._gone: set[str] = set()
        self._gone_lock = threading.Lock()
        self._list_file: ModelsListFile | None = None

    def plan_models(self, tiers: dict[str, str], fallback: list[str], cache_dir: Path) -> ModelPlan:
        """Resolve the tiers once per run: a fresh cached list, else the API's, else (the API
        did not answer) a stale cached list or the built-in lineup. Never raises for the list.

        The list file is restored state: it may speed a run up, never take a model away. When
        what it says (its list, the models it remembers as gone) leaves a tier with no model,
        the API is asked afresh and the remembered gone models are forgotten, so a planted file
        cannot turn every file into "provider outage", which `review.unreviewed: neutral` would
        pass (docs/security.md, §6.13)."""
        lf = ModelsListFile(cache_dir, endpoint_id(self._endpoint), self._ttl_s)
        self._list_file = lf
        cached = lf.fresh()
        restored_gone = cached[1] if cached is not None else lf.gone()
        listed, gone, source = self._listing(lf, cached, restored_gone)
        resolved = plan(tiers, fallback, listed, today=self.today, gone=gone, source=source)
        self._replan = None
        if cached is not None or restored_gone:
            self._replan = (tiers, fallback)  # what to ask the API again if the hint misleads
            if any(not chain for chain in resolved.chains.values()):
                return self._relist("the cached models list leaves a tier without a model")
        with self._gone_lock:
            self._gone |= gone
        self.plan = dataclasses.replace(resolved, notes=(*lf.warnings, *resolved.notes))
        return self.plan

    def _relist(self, why: str) -> ModelPlan:
        """Plan again from the API's own list, forgetting what the list file remembered (once
        per run: the restored hint has misled this run)."""
        assert self._replan is not None and self._list_file is not None
        tiers, fallback = self._replan
        self._replan = None
        log.warning("%s; asking the API for its models list", why)
        listed, _, source = self._listing(self._list_file, None, set())
        with self._gone_lock:
            self._gone = set()
        resolved = plan(tiers, fallback, listed, today=self.today, gone=set(), source=source)
        notes = (*self._list_file.warnings, f"{why}: asked the API again", *resolved.notes)
        self.plan = dataclasses.replace(resolved, notes=notes)
        return self.plan

    def _listing(
        self,
        lf: ModelsListFile,
        cached: tuple[list[str], set[str], float] | None,
        gone: set[str],
    ) -> tuple[list[str] | None, set[str], str]:
        """(listed models or None, gone models, where the list came from)."""
        if cached is not None:
            listed, gone, age = cached
            return listed, gone, f"the API's models list (cached {age / 60:.0f} min ago)"
        try:
            listed = self._client.list_models()
        except genai_errors.APIError as exc:
            if is_auth_error(exc):
                raise self._client.reject_key(exc, status=False) from None
            return None, gone, f"models.list answered HTTP {exc.code}"
        except TRANSPORT_ERRORS as exc:
            return None, gone, f"models.list failed ({type(exc).__name__})"
        gone &= set(listed)
        lf.save(listed, gone)
        return listed, gone, "the API's models list"

    def mark_gone(self, model: str) -> bool:
        """Remember `model` as gone (here and in the list file); False if it already was."""
        with self._gone_lock:
            if model in self._gone:
                return False
            self._gone.add(model)
        log.warning("model %s is unavailable; its files move to the fallback", model)
        if self._list_file is not None:
            self._list_file.mark_gone(model)
        return True

    def is_gone(self, model: str) -> bool:
        """Whether this run already found `model` gone (another batch's 404, or the list file)."""
        with self._gone_lock:
            return model in self._gone

    def next_model(self, tier: str, gone_model: str) -> str | None:
        """The model to ask instead of `gone_model` for a batch of `tier`, or None."""
        if self.plan is None:
            return None
        with self._gone_lock:
            gone = set(self._gone) | {gone_model}
        nxt = self.plan.next_model(tier, gone)
        with self._replan_lock:
            if nxt is None and self._replan is not None:
                # The plan came from the restored list file: before calling this an outage
                # (which fail-open would pass), see whether the API itself has a model left.
                try:
                    self._relist(f"no model left for the {tier} tier in the cached models list")
                except ProviderError:
                    return None
                with self._gone_lock:
                    self._gone.add(gone_model)
                    gone = set(self._gone)
                nxt = self.plan.next_model(tier, gone)
        return nxt
