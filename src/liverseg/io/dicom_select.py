"""Which candidate stack of a DICOM export to read, by documented rules (or the user's choice).

Candidates (:mod:`liverseg.io.dicom_stacks`) are ranked by these rules, in this order; the first
rule on which two candidates differ decides between them:

1. CT before other modalities;
2. ``ORIGINAL`` before ``DERIVED`` images (``ImageType`` value 1; absent counts as original);
3. ``PRIMARY`` before ``SECONDARY`` images (value 2; absent counts as primary);
4. axial before coronal, sagittal or oblique stacks;
5. coverage of the abdomen: stacks spanning at least :data:`ABDOMEN_MM` along their normal
   (an adult liver spans ~15 cm) before shorter ones;
6. slice thickness within :data:`THICKNESS_RANGE_MM` before thinner or thicker slices;
7. thinner slices;
8. more slices.

Ties (two candidates equal on every rule, e.g. two identical reconstructions) are broken by
the lower series number, then the lower acquisition number, then the stack id, and the choice
is flagged in the warnings. ``series=`` (``--series``) picks a series by SeriesInstanceUID,
SeriesNumber or stack id instead; the rules then only choose among that series' stacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from liverseg.errors import InputError
from liverseg.io.dicom_scan import SkippedFile, summarize_skipped
from liverseg.io.dicom_stacks import RejectedGroup, Stack

__all__ = ["ABDOMEN_MM", "RULES", "THICKNESS_RANGE_MM", "Selection", "select_stack"]

log = logging.getLogger(__name__)

ABDOMEN_MM = 150.0
THICKNESS_RANGE_MM = (1.0, 5.0)
#: at most this many files are named per reason in a warning (the report lists all of them)
WARN_FILES = 5
#: at most this many skipped files are listed in the report
REPORT_SKIPPED = 500


def _in_range(s: Stack) -> bool:
    lo, hi = THICKNESS_RANGE_MM
    return s.thickness_mm is not None and lo <= s.thickness_mm <= hi


#: (rule, what it prefers, key: larger is better)
RULES: tuple[tuple[str, str, Callable[[Stack], Any]], ...] = (
    ("modality", "CT over other modalities", lambda s: s.modality == "CT"),
    ("original", "ORIGINAL over DERIVED images", lambda s: s.image_type[:1] != ("DERIVED",)),
    ("primary", "PRIMARY over SECONDARY images", lambda s: s.image_type[1:2] != ("SECONDARY",)),
    ("axial", "axial over other orientations", lambda s: s.orientation == "axial"),
    (
        "coverage",
        f"coverage of at least {ABDOMEN_MM:.0f} mm (the abdomen)",
        lambda s: s.extent_mm >= ABDOMEN_MM,
    ),
    (
        "thickness",
        f"slice thickness within {THICKNESS_RANGE_MM[0]:g}-{THICKNESS_RANGE_MM[1]:g} mm",
        _in_range,
    ),
    ("thinner", "thinner slices", lambda s: -(s.thickness_mm if s.thickness_mm is not None else 1e9)),
    ("slices", "more slices", lambda s: s.n_slices),
)


def _rank(s: Stack) -> tuple[Any, ...]:
    """Sort key: best first."""
    main = tuple(_neg(rule(s)) for _, _, rule in RULES)
    acq = min((h.acquisition_number for h in s.headers if h.acquisition_number is not None), default=0)
    number = s.series_number if s.series_number is not None else 1 << 30
    return (*main, number, acq, s.stack_id)


def _neg(value: Any) -> Any:
    return -value if isinstance(value, int | float) and not isinstance(value, bool) else (not value)


def _why(chosen: Stack, other: Stack) -> tuple[str, bool]:
    """Why ``chosen`` ranks before ``other``: the first deciding rule, and whether it was a tie."""
    for _, prefers, rule in RULES:
        if rule(chosen) != rule(other):
            return prefers, False
    if chosen.series_number != other.series_number:
        return "equal on every rule; lower series number", True
    return "equal on every rule; lower acquisition number / stack id", True


@dataclass
class Selection:
    """The chosen stack, the alternatives (with why they were not chosen) and what was left out."""

    chosen: Stack
    ranked: list[Stack]
    skipped: list[SkippedFile]
    rejected: list[RejectedGroup]
    requested: str | None = None
    why_not: dict[str, str] = field(default_factory=dict)
    tie: bool = False
    n_files: int = 0

    @property
    def alternatives(self) -> list[Stack]:
        return [s for s in self.ranked if s is not self.chosen]

    @property
    def dropped(self) -> list[SkippedFile]:
        """Far-off end slices dropped from the chosen stack."""
        geo = self.chosen.geometry
        if geo is None:
            return []
        return [
            SkippedFile(h.member, reason, h.series_instance_uid, h.series_number, h.modality)
            for h, reason in zip(geo.dropped, geo.dropped_reasons, strict=True)
        ]

    def why(self) -> str:
        """One sentence: how the chosen stack was picked."""
        if self.requested is not None:
            return f"requested with --series {self.requested}"
        if not self.alternatives:
            return "the only regular stack of images found"
        first = self.alternatives[0]
        return f"ranked first of {len(self.ranked)} candidates ({self.why_not[first.stack_id]} decided)"

    def warnings(self) -> list[str]:
        """Messages for the user and the report: files left out (named), a tie, dropped slices."""
        out = []
        by_reason: dict[str, list[str]] = {}
        for s in [*self.dropped, *self.skipped]:
            if s.reason == "not a DICOM file":
                continue  # listed in the report; not worth a warning (README files, viewers on CDs)
            by_reason.setdefault(s.reason, []).append(s.member)
        for g in self.rejected:
            by_reason.setdefault(f"not a regular stack: {g.reason}", []).extend(g.members)
        for reason, files in by_reason.items():
            names = ", ".join(files[:WARN_FILES]) + (
                f" and {len(files) - WARN_FILES} more" if len(files) > WARN_FILES else ""
            )
            out.append(f"DICOM: left out {len(files)} file(s), {reason}: {names}")
        if self.tie:
            s = self.chosen
            name = f"series {s.series_number} ({s.stack_id})" if s.series_number is not None else s.stack_id
            out.append(
                f"DICOM: {len(self.ranked)} candidate stacks are equally good by the selection rules; read "
                f"{name}, chosen by the tie-breakers (lowest series number, then acquisition number, then "
                "stack id). Check it is the intended one, or choose with --series"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready account of the selection (``report["input"]["dicom"]["selection"]``)."""
        skipped = [s.to_dict() for s in [*self.dropped, *self.skipped]]
        return {
            "chosen": self.chosen.summary(),
            "why": self.why(),
            "requested": self.requested,
            "tie": self.tie,
            "rules": [prefers for _, prefers, _ in RULES],
            "alternatives": [
                {**s.summary(), "why_not": self.why_not.get(s.stack_id, "")} for s in self.alternatives
            ],
            "rejected": [g.to_dict() for g in self.rejected],
            "n_files": self.n_files,
            "n_skipped": len(skipped),
            "skipped": skipped[:REPORT_SKIPPED],
        }


def _matches(s: Stack, wanted: str) -> bool:
    if wanted in (s.stack_id, s.series_instance_uid):
        return True
    return wanted.isdigit() and s.series_number == int(wanted)


def _series_list(stacks: Sequence[Stack]) -> str:
    seen: dict[str, int | None] = {}
    for s in stacks:
        seen.setdefault(s.series_instance_uid, s.series_number)
    return "; ".join(f"number {n} ({uid})" for uid, n in seen.items())


def _no_stack_error(
    rejected: Sequence[RejectedGroup], skipped: Sequence[SkippedFile], source: Any
) -> InputError:
    if len(rejected) == 1:  # the familiar message of a single broken series, plus what was set aside
        g = rejected[0]
        aside = [s for s in skipped if s.series_instance_uid == g.series_instance_uid]
        note = "; ".join(f"{s.member}: {s.reason}" for s in aside[:3])
        return InputError(
            f"{g.reason} (left out of this series first: {note})" if aside else g.reason, source
        )
    if rejected:
        detail = "; ".join(
            f"series {g.series_number if g.series_number is not None else g.series_instance_uid}: {g.reason}"
            for g in rejected[:3]
        )
        return InputError(f"no regular stack of slices found: {detail}", source)
    singles = [s for s in skipped if s.reason.startswith("a single slice")]
    if singles:
        return InputError(
            f"expected a series of at least 2 slices to build a 3D volume, got a single slice "
            f"({singles[0].member}); other files: {summarize_skipped([s for s in skipped if s is not singles[0]])}",
            source,
        )
    return InputError(
        f"expected a stack of at least 2 DICOM slices, found none (skipped: {summarize_skipped(skipped)})",
        source,
    )


def select_stack(
    stacks: Sequence[Stack],
    rejected: Sequence[RejectedGroup],
    skipped: Sequence[SkippedFile],
    *,
    series: str | None = None,
    source: Any = None,
    n_files: int = 0,
) -> Selection:
    """Rank the candidates and pick one (see the module docstring).

    Args:
        stacks, rejected, skipped: the result of :func:`~liverseg.io.dicom_stacks.find_stacks`
            plus the files the scan skipped.
        series: a SeriesInstanceUID, SeriesNumber or stack id to read instead of the best stack.
        source: the folder / zip, for messages.

    Raises:
        InputError: no candidate at all (the message says why, e.g. the one broken series'
            gap), or ``series`` matches nothing (the message lists the series found) or several
            series.
    """
    pool = list(stacks)
    if series is not None:
        wanted = str(series).strip()
        pool = [s for s in stacks if _matches(s, wanted)]
        if not pool:
            bad = [g for g in rejected if wanted in (g.series_instance_uid, str(g.series_number))]
            if bad:
                raise InputError(f"series {wanted} is not a regular stack of slices: {bad[0].reason}", source)
            raise InputError(
                f"expected series {wanted} (a SeriesInstanceUID, SeriesNumber or stack id), found only: "
                f"{_series_list(stacks) or 'no readable series'}",
                source,
            )
        if len({s.series_instance_uid for s in pool}) > 1:
            raise InputError(
                f"series number {wanted} is used by several series: {_series_list(pool)}; "
                "give the SeriesInstanceUID instead",
                source,
            )
    if not pool:
        raise _no_stack_error(rejected, skipped, source)
    ranked = sorted(pool, key=_rank)
    chosen = ranked[0]
    why_not, tie = {}, False
    for other in ranked[1:]:
        why_not[other.stack_id], was_tie = _why(chosen, other)
        tie = tie or was_tie
    if series is not None:
        chosen_ids = {s.stack_id for s in pool}
        ranked += [s for s in sorted(stacks, key=_rank) if s.stack_id not in chosen_ids]
        for other in ranked:
            why_not.setdefault(other.stack_id, "not the requested series")
    sel = Selection(chosen, ranked, list(skipped), list(rejected), series, why_not, tie, n_files)
    if sel.alternatives:
        log.info(
            "%s: %d candidate stacks; reading %s (series %s, %d slices): %s",
            source,
            len(ranked),
            chosen.stack_id,
            chosen.series_number,
            chosen.n_slices,
            sel.why(),
        )
    return sel
