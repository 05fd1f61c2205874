"""`team-hours-py`: which models each team may use, during which hours, where they are
served and how much each user may spend a day.

The same policy as the Rust `team-hours` and `team-hours-js`, message for message: the
three are compared on the same fixtures, so keep denial texts byte-identical.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from tollgate_guest import (
    BudgetDecision,
    BudgetLimit,
    ConfigError,
    Decision,
    Fields,
    Metric,
    Period,
    Plugin,
    Request,
    RetryOn,
    RoutePlan,
    Scope,
    Target,
    Window,
    export,
    glob_match,
    string_at,
)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LABEL = "team_hours.entry"
MINUTE_MS = 60_000
DAY_MS = 86_400_000

# [0-9], not \d: \d also matches other scripts' digits, which int() would accept.
_OFFSET = re.compile(r"([+-])([0-9]{2}):([0-9]{2})")
_HOURS = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")

# Read at build time: componentize-py snapshots the module after import.
with open(os.path.join(os.path.dirname(__file__), "config.schema.json"), encoding="utf-8") as f:
    SCHEMA = f.read()


@dataclass(frozen=True)
class Team:
    models: tuple[str, ...]
    hours: tuple[int, int] | None  # [start, end) in minutes of the local day
    days: frozenset[int] | None  # 0 = Monday
    route: tuple[Target, ...] | None
    daily_usd: float | None


@dataclass(frozen=True)
class Config:
    offset_minutes: int
    offset: str  # `+HH:MM`, as printed in denials
    teams: dict[str, Team]
    default_team: str | None


def parse_offset(f: Fields) -> tuple[int, str]:
    text = f.string("utc_offset", "+00:00")
    m = _OFFSET.fullmatch(text)
    minutes = int(m[2]) * 60 + int(m[3]) if m else -1
    if not m or int(m[3]) >= 60 or minutes > 14 * 60:
        raise f.error("utc_offset", "expected +HH:MM or -HH:MM, at most 14:00")
    sign = -1 if m[1] == "-" and minutes else 1
    return sign * minutes, f"{'-' if sign < 0 else '+'}{m[2]}:{m[3]}"


def parse_hours(f: Fields) -> tuple[int, int] | None:
    text = f.string("hours", None)
    if text is None:
        return None
    m = _HOURS.fullmatch(text)
    if m:
        (sh, sm, eh, em) = (int(g) for g in m.groups())
        start, end = sh * 60 + sm, eh * 60 + em
        if sm < 60 and em < 60 and start < end <= 24 * 60:
            return start, end
    raise f.error("hours", "expected HH:MM-HH:MM with start before end")


def parse_days(f: Fields) -> frozenset[int] | None:
    if f.get("days", None) is None:
        return None
    days: list[int] = []
    for path, item in f.items("days", nonempty="must list at least one day"):
        day = string_at(path, item)
        if day not in DAYS:
            raise ConfigError(path, f"'{day}' is not a day (mon..sun)")
        if DAYS.index(day) in days:
            raise ConfigError(path, f"'{day}' is listed twice")
        days.append(DAYS.index(day))
    return frozenset(days)


def parse_route(f: Fields) -> tuple[Target, ...] | None:
    if f.get("route", None) is None:
        return None
    targets = []
    for path, item in f.items("route", nonempty="must list at least one target"):
        t = Fields(item, path, known=("provider", "model"))
        targets.append(Target(t.string("provider", nonempty=True), t.string("model", None, nonempty=True)))
    return tuple(targets)


def parse_team(f: Fields) -> Team:
    models = tuple(
        string_at(path, item, nonempty=True)
        for path, item in f.items("models", nonempty="must list at least one model glob")
    )
    daily = f.number("daily_usd", None)
    if daily is not None and daily <= 0:
        raise f.error("daily_usd", "must be a number above 0")
    return Team(models, parse_hours(f), parse_days(f), parse_route(f), daily)


class TeamHours(Plugin):
    NAME = "team-hours-py"
    VERSION = "0.1.0"
    CONFIG_SCHEMA = SCHEMA

    def parse_config(self, data) -> Config:
        f = Fields(data, known=("utc_offset", "default_team", "teams"))
        offset_minutes, offset = parse_offset(f)
        teams_f = f.object("teams")
        if not teams_f.data:
            raise ConfigError("teams", "must list at least one team")
        known = ("models", "hours", "days", "route", "daily_usd")
        teams = {name: parse_team(teams_f.object(name, known=known)) for name in teams_f.data}
        default = f.string("default_team", None)
        if default is not None and default not in teams:
            raise f.error("default_team", f"'{default}' is not one of teams")
        return Config(offset_minutes, offset, teams, default)

    def policy(self, config: Config, req: Request) -> Decision:
        key, name = entry_of(config, req)
        if key is None:
            if req.team is None:
                return Decision.forbid("team-hours: requests without a team are not allowed")
            return Decision.forbid(f"team-hours: team '{req.team}' is not allowed to use the gateway")
        team = config.teams[key]
        if not any(glob_match(p, req.model) for p in team.models):
            return Decision.forbid(f"team-hours: model '{req.model}' is not allowed for team '{name}'")
        local_ms = req.now_ms() + config.offset_minutes * MINUTE_MS
        day = (local_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
        minute = (local_ms % DAY_MS) // MINUTE_MS
        outside_days = team.days is not None and day not in team.days
        outside_hours = team.hours is not None and not team.hours[0] <= minute < team.hours[1]
        if outside_days or outside_hours:
            now = f"{DAYS[day]} {minute // 60:02}:{minute % 60:02}"
            return Decision.forbid(
                f"team-hours: team '{name}' is outside its hours; now {now} at UTC{config.offset}"
            )
        return Decision.allow_with([(LABEL, key)])

    def route(self, config: Config, req: Request) -> RoutePlan | None:
        key, _ = entry_of(config, req)
        if key is None or config.teams[key].route is None:
            return None
        targets = [Target(t.provider, t.model) for t in config.teams[key].route]
        options = dict(
            retry_on=RetryOn.on(429, 500, 502, 503, 529, timeout=True, connect_error=True),
            retries=0,
            backoff_ms=0,
            max_backoff_ms=0,
        )
        if len(targets) == 1:
            plan = RoutePlan.single(targets[0], **options)
        else:
            plan = RoutePlan.fallback(targets, **options)
        return plan.label(LABEL, key)

    def budget(self, config: Config, req: Request, target: Target) -> BudgetDecision:
        key, _ = entry_of(config, req)
        if key is None or config.teams[key].daily_usd is None:
            return BudgetDecision.allow()
        scope = Scope.USER if req.user is not None else Scope.KEY
        limit = BudgetLimit(
            f"team-hours:{key}:daily",
            scope,
            Metric.COST,
            Period.DAY,
            config.teams[key].daily_usd,
            window=Window.CALENDAR,
            alert_at=[80],
        )
        return BudgetDecision.allow([limit])


def entry_of(config: Config, req: Request) -> tuple[str | None, str]:
    """The key of the `teams` entry that applies, and the team name denials print (`-` for none)."""
    name = req.team if req.team is not None else "-"
    if req.team is not None and req.team in config.teams:
        return req.team, name
    return config.default_team, name


Guest = export(TeamHours)
