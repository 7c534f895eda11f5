"""Batching: routed files become ReviewItems, packed into as few calls as the budget allows.

`make_items` gives one item per file, or, when a file's diff does not fit one call, one item
per group of consecutive hunks (a hunk too big on its own is cut into line chunks, a line too
long on its own into slices): nothing is dropped. `pack` is first-fit decreasing per model,
then (`review.merge_tiers`) moves a lower tier's call into the spare room of a higher tier's
call when that does not make the run dearer: the call saved (its instructions, its per-call
answer and thinking at the cheaper model) must pay for the moved files' tokens at the dearer
model, within `review.merge_max_usd` (default 0: no move may cost more). A batch is thus
never promoted to a dearer tier than its riskiest file needs unless that is the cheaper way;
a model without a known price never moves (no guessing).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date

from bot.config.review import ReviewConfig
from bot.config.routing import PriceConfig
from bot.review.cost import price_for
from bot.review.prompt import BATCH_HEADER, file_block, line_ranges, system_instruction
from bot.review.route import TIERS
from bot.review.tokens import (
    CHARS_PER_TOKEN,
    OUTPUT_TOKENS_PER_CALL,
    OUTPUT_TOKENS_PER_FILE,
    Calibration,
    estimate_tokens,
    estimated_thoughts,
)
from bot.review.types import Batch, DiffLine, FileChange, Hunk, ReviewItem

# Room kept free in every call for part numbers, boundaries and estimate error.
_SAFETY = 0.97


def prefix_tokens(config: ReviewConfig, calibration: Calibration | None = None) -> int:
    """Tokens every call pays before its files: the stable instruction and the batch header."""
    factor = calibration.factor if calibration else 1.0
    return estimate_tokens(system_instruction(config) + BATCH_HEADER, factor)


def item_budget(config: ReviewConfig, calibration: Calibration | None = None) -> int:
    """The most tokens one item may take so that it fits a call on its own."""
    room = int(config.budget_tokens * _SAFETY) - prefix_tokens(config, calibration)
    if room < 200:
        raise ValueError(
            f"review.budget_tokens={config.budget_tokens} leaves no room for files after the "
            f"{prefix_tokens(config, calibration)}-token instructions; raise it"
        )
    return room


def _render(lines: Sequence[DiffLine]) -> str:
    return "".join(f"{ln.origin}{ln.content}" for ln in lines)


def _header(old_start: int, lines: Sequence[DiffLine], new_start: int, note: str) -> str:
    old_n = sum(1 for ln in lines if ln.origin != "+")
    new_n = sum(1 for ln in lines if ln.origin != "-")
    return f"@@ -{old_start},{old_n} +{new_start},{new_n} @@ {note}\n"


def _split_hunk(hunk: Hunk, max_chars: int) -> list[Hunk]:
    """Cut one hunk into consecutive chunks whose rendering stays under max_chars.

    Each chunk gets a valid @@ header with its own start lines, so line numbers stay right.
    """
    chunks: list[Hunk] = []
    cur: list[DiffLine] = []
    cur_size = 0
    old_pos, new_pos = hunk.old_start, hunk.new_start
    start_old, start_new = old_pos, new_pos
    context = hunk.header.split("@@")[-1].strip() if hunk.header.count("@@") >= 2 else ""

    def flush() -> None:
        nonlocal cur, cur_size
        if cur:
            note = f"{context} (cut {len(chunks) + 1})".strip()
            h = _header(start_old, cur, start_new, note)
            chunks.append(Hunk(start_old, 0, start_new, 0, h, tuple(cur)))
        cur, cur_size = [], 0

    for ln in hunk.lines:
        pieces = [ln]
        size = len(ln.content) + 1
        if size > max_chars:
            # One enormous line (minified code, data): slice it; each slice keeps its line number.
            step = max(max_chars - 1, 1)
            pieces = [
                DiffLine(ln.origin, ln.old_lineno, ln.new_lineno, ln.content[i : i + step] + "\n")
                for i in range(0, len(ln.content), step)
            ]
        for piece in pieces:
            psize = len(piece.content) + 1
            if cur and cur_size + psize > max_chars:
                flush()
            if not cur:
                start_old, start_new = old_pos, new_pos
            cur.append(piece)
            cur_size += psize
            if len(pieces) > 1:
                flush()  # slices of one line never share a chunk: each is that line's text
        if ln.origin != "+":
            old_pos += 1
        if ln.origin != "-":
            new_pos += 1
    flush()
    return chunks


def _render_hunks(hunks: Iterable[Hunk]) -> str:
    return "".join(h.render() for h in hunks)


def _added(hunks: Iterable[Hunk]) -> frozenset[int]:
    out: set[int] = set()
    for h in hunks:
        out |= h.added_lines
    return frozenset(out)


def make_items(
    change: FileChange,
    tier: str,
    model: str,
    cache_key: str,
    config: ReviewConfig,
    *,
    calibration: Calibration | None = None,
) -> list[ReviewItem]:
    """One ReviewItem for the file, or several parts (cache_key#i) when it exceeds one call."""
    factor = calibration.factor if calibration else 1.0
    budget = item_budget(config, calibration)

    def est(hunks: Sequence[Hunk], part: int = 1, parts: int = 1) -> int:
        text = file_block(change.path, part, parts, _added(hunks), _render_hunks(hunks))
        return estimate_tokens(text, factor)

    whole = est(change.hunks)
    if whole <= budget or not change.hunks:
        return [
            ReviewItem(
                path=change.path,
                diff_text=change.render_diff(),
                changed_lines=change.changed_lines,
                tier=tier,
                model=model,
                cache_key=cache_key,
                est_tokens=whole,
            )
        ]

    # Characters a piece may take so that its block (with header lines) stays within budget.
    max_chars = max(int((budget - 64) * 4 / factor), 256)
    pieces: list[Hunk] = []
    for h in change.hunks:
        if est([h]) <= budget:
            pieces.append(h)
        else:
            pieces.extend(_split_hunk(h, max_chars))

    # Greedy grouping on an additive upper bound of each group's block size: the ranges line
    # of a union is never longer than its pieces' lines joined, the body is their renders.
    # (Re-estimating the whole group for every piece added was quadratic in the hunks.)
    fixed = len(file_block(change.path, 10**6, 10**6, [1], "")) - 1
    groups: list[list[Hunk]] = []
    ranges = body = 0
    for piece in pieces:
        p_ranges = len(line_ranges(piece.added_lines)) + 2
        p_body = len(piece.render())
        upper = math.ceil((fixed + ranges + p_ranges + body + p_body) / CHARS_PER_TOKEN * factor)
        if groups and upper <= budget:
            groups[-1].append(piece)
            ranges, body = ranges + p_ranges, body + p_body
        else:
            groups.append([piece])
            ranges, body = p_ranges, p_body
    n = len(groups)
    return [
        ReviewItem(
            path=change.path,
            diff_text=_render_hunks(group),
            changed_lines=_added(group),
            tier=tier,
            model=model,
            cache_key=f"{cache_key}#{i}",
            est_tokens=est(group, i + 1, n),
            part=i,
            parts=n,
        )
        for i, group in enumerate(groups)
    ]


def _ffd(items: list[ReviewItem], capacity: int, max_items: int) -> list[list[ReviewItem]]:
    """First-fit decreasing. Items larger than capacity get a bin of their own (never dropped)."""
    bins: list[list[ReviewItem]] = []
    room: list[int] = []
    for item in sorted(items, key=lambda it: (-it.est_tokens, it.path, it.part)):
        for i, free in enumerate(room):
            if item.est_tokens <= free and len(bins[i]) < max_items:
                bins[i].append(item)
                room[i] -= item.est_tokens
                break
        else:
            bins.append([item])
            room.append(capacity - item.est_tokens)
    return bins


#: What moving a call's items from one model into another model's call costs, net of the call
#: saved, in USD (None: a price is unknown, so the move is not made).
ExtraCost = Callable[[Sequence[ReviewItem], str, str], "float | None"]


def pack(
    items: Sequence[ReviewItem],
    budget_tokens: int,
    *,
    overhead_tokens: int = 0,
    max_items: int = 50,
    merge_tiers: bool = True,
    merge_max_tokens: int = 16000,
    merge_max_usd: float = 0.0,
    extra_cost: ExtraCost | None = None,
    tier_order: Sequence[str] = TIERS,
) -> list[Batch]:
    """Pack items into the fewest calls: per model, each call ≤ budget_tokens (prompt included).

    `overhead_tokens` is what every call pays before its files (see `prefix_tokens`). With
    `merge_tiers` and an `extra_cost`, a lower tier's call of at most `merge_max_tokens` then
    rides along in a higher tier's call when that costs at most `merge_max_usd` more (net of
    the call saved): `_merge_up`. Without prices nothing moves.
    """
    capacity = int(budget_tokens * _SAFETY) - overhead_tokens
    if capacity <= 0:
        raise ValueError(f"budget of {budget_tokens} tokens leaves no room for files")
    groups: dict[tuple[str, str], list[ReviewItem]] = {}
    for it in items:
        groups.setdefault((it.tier, it.model), []).append(it)

    bins: list[tuple[str, str, list[ReviewItem]]] = []
    for (tier, model), group in groups.items():
        bins.extend((tier, model, b) for b in _ffd(group, capacity, max_items))

    if merge_tiers:
        rule = _MergeRule(merge_max_tokens, merge_max_usd, extra_cost)
        bins = _merge_up(bins, capacity, max_items, rule, tier_order)

    rank = {t: i for i, t in enumerate(tier_order)}
    bins.sort(key=lambda b: (rank.get(b[0], len(rank)), b[1], b[2][0].path, b[2][0].part))
    return [
        Batch(
            tier=tier,
            model=model,
            items=tuple(b),
            est_tokens=overhead_tokens + sum(it.est_tokens for it in b),
        )
        for tier, model, b in bins
    ]


@dataclasses.dataclass(frozen=True)
class _MergeRule:
    """When a lower tier's call may move into a higher tier's call (one call fewer): it carries
    at most `max_tokens`, and the move costs at most `max_usd` more than keeping the call
    (`extra_cost`: the items' tokens at the price difference, less the call saved)."""

    max_tokens: int
    max_usd: float
    extra_cost: ExtraCost | None

    def allows(
        self, items: Sequence[ReviewItem], used: int, from_model: str, to_model: str
    ) -> bool:
        if self.extra_cost is None or not 0 < used <= self.max_tokens:
            return False
        net = self.extra_cost(items, from_model, to_model)
        return net is not None and net <= self.max_usd


def _merge_up(
    bins: list[tuple[str, str, list[ReviewItem]]],
    capacity: int,
    max_items: int,
    rule: _MergeRule,
    tier_order: Sequence[str],
) -> list[tuple[str, str, list[ReviewItem]]]:
    """Move whole lower-tier calls into the spare room of higher tiers' calls, as `rule`
    allows, until no call can move: the number of calls strictly drops with each move, files
    only ever move up (never to a weaker model), and the nearest tier with room is tried first.
    Moved files are reviewed by the stronger model; their cache key still names the routed
    model, so reruns hit."""
    rank = {t: i for i, t in enumerate(tier_order)}
    removed: set[int] = set()

    def used(b: list[ReviewItem]) -> int:
        return sum(it.est_tokens for it in b)

    def place(b: list[ReviewItem], targets: list[int]) -> dict[int, list[ReviewItem]]:
        """Items of `b` spread over `targets` (most room first), or {} when they do not fit."""
        targets = sorted(targets, key=lambda j: -(capacity - used(bins[j][2])))
        out: dict[int, list[ReviewItem]] = {}
        room = {j: capacity - used(bins[j][2]) for j in targets}
        slots = {j: max_items - len(bins[j][2]) for j in targets}
        for it in sorted(b, key=lambda it: -it.est_tokens):
            for j in targets:
                if it.est_tokens <= room[j] and slots[j] > 0:
                    out.setdefault(j, []).append(it)
                    room[j] -= it.est_tokens
                    slots[j] -= 1
                    break
            else:
                return {}
        return out

    def move_one() -> bool:
        # Smallest lower-tier calls first: they are the ones most likely to fit somewhere.
        alive = [i for i in range(len(bins)) if i not in removed and bins[i][0] in rank]
        for i in sorted(alive, key=lambda i: (rank[bins[i][0]], used(bins[i][2]))):
            tier, model, b = bins[i]
            for up in range(rank[tier] + 1, len(tier_order)):
                targets = [
                    j
                    for j in alive
                    if j != i
                    and rank[bins[j][0]] == up
                    and rule.allows(b, used(b), model, bins[j][1])
                ]
                placed = place(b, targets) if targets else {}
                if not placed:
                    continue
                for j, moved in placed.items():
                    t_tier, t_model, _ = bins[j]
                    bins[j][2].extend(
                        dataclasses.replace(it, tier=t_tier, model=t_model) for it in moved
                    )
                removed.add(i)
                return True
        return False

    while move_one():
        continue
    return [b for i, b in enumerate(bins) if i not in removed]


def move_cost(
    prices: Mapping[str, PriceConfig] | None,
    overhead_tokens: int,
    per_call_output: Callable[[str], int],
    on: date | None = None,
) -> ExtraCost:
    """ExtraCost from a price table: the items' input and answer tokens at `to_model`'s prices
    minus at `from_model`'s, less what the call no longer made would have cost at
    `from_model` (its `overhead_tokens` of instructions and `per_call_output(from_model)`
    tokens of answer and thinking). None when either price is unknown."""

    def extra(items: Sequence[ReviewItem], from_model: str, to_model: str) -> float | None:
        a, b = price_for(from_model, prices, on), price_for(to_model, prices, on)
        if a is None or b is None:
            return None
        tokens = sum(it.est_tokens for it in items)
        answer = OUTPUT_TOKENS_PER_FILE * len(items)
        added = tokens * (b.input - a.input) + answer * (b.output - a.output)
        saved = overhead_tokens * a.input + per_call_output(from_model) * a.output
        return (added - saved) / 1e6

    return extra


def plan(
    items: Sequence[ReviewItem], config: ReviewConfig, calibration: Calibration | None = None
) -> list[Batch]:
    """`pack` with the settings of `review:` (budget, files per call, tier merging)."""
    overhead = prefix_tokens(config, calibration)

    def per_call(model: str) -> int:
        return OUTPUT_TOKENS_PER_CALL + estimated_thoughts(model, config.gemini)

    return pack(
        items,
        config.budget_tokens,
        overhead_tokens=overhead,
        max_items=config.max_files_per_call,
        merge_tiers=config.merge_tiers,
        merge_max_tokens=config.merge_max_tokens,
        merge_max_usd=config.merge_max_usd,
        extra_cost=move_cost(config.prices, overhead, per_call),
    )
