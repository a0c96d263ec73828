"""The windows of usage and account outcomes around each anchor, in SQL.

metrics.changes measures each anchored subject over a window before and
a window after its day, and metrics.facts stores those figures for the
trained at each refresh, because their days are known then. Both run the
SQL below, so the stored figures are the ones the source tables give.
The anchors are a derived table of (subject, group, day) rows with the
bounds of their windows: sent as array literals on a request, or read
from metrics.TrainingFact by a refresh.
"""

import json
from datetime import date
from typing import Any

from django.db import connection

from metrics.cohorts import DAYS_AFTER, DAYS_BEFORE, Anchor, hashed_sql

# Health scores and tickets are sparse, so both of their windows span this
# many days, and ticket counts before and after are directly comparable.
ACCOUNT_WINDOW_DAYS = 30


# A derived table of anchors, one row per subject, with its windows. The
# anchors arrive as three array literals (ids, groups, and days counted from
# 1970-01-01); {before} and {after} are whole numbers of days.
ANCHORS_POSTGRESQL = """
SELECT
    raw.subject_id,
    raw.trained,
    DATE '1970-01-01' + raw.day_number AS day,
    DATE '1970-01-01' + raw.day_number - {before} AS window_start,
    DATE '1970-01-01' + raw.day_number - 1 AS before_end,
    DATE '1970-01-01' + raw.day_number + {after} AS after_end
FROM unnest(%s::bigint[], %s::boolean[], %s::integer[])
    AS raw(subject_id, trained, day_number)
"""

ANCHORS_SQLITE = """
SELECT
    json_extract(value, '$[0]') AS subject_id,
    json_extract(value, '$[1]') AS trained,
    json_extract(value, '$[2]') AS day,
    date(json_extract(value, '$[2]'), '-{before} days') AS window_start,
    date(json_extract(value, '$[2]'), '-1 days') AS before_end,
    date(json_extract(value, '$[2]'), '+{after} days') AS after_end
FROM json_each(%s)
"""

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Usage per contact in each window. The training day is in neither window,
# because it is partly before and partly after the training. {added_in_time}
# is ADDED_IN_TIME_SQL, or nothing when the anchors were checked beforehand.
USAGE_SQL = """
SELECT
    anchor.subject_id,
    anchor.trained,
    COALESCE(SUM(CASE WHEN usage.day <= anchor.before_end THEN usage.count END), 0)
        AS before_count,
    COALESCE(SUM(CASE WHEN usage.day > anchor.day THEN usage.count END), 0)
        AS after_count,
    anchor.day
FROM ({anchors}) AS anchor
{added_in_time}
LEFT JOIN customers_usageday AS usage
    ON usage.contact_id = anchor.subject_id
    AND usage.day >= anchor.window_start
    AND usage.day <= anchor.after_end
    AND usage.day <> anchor.day
GROUP BY anchor.subject_id, anchor.trained, anchor.day
"""

# Keeps the anchors whose contact was added before the window began, since
# usage before a contact was added cannot be measured.
ADDED_IN_TIME_SQL = """
JOIN customers_contact AS contact
    ON contact.id = anchor.subject_id AND contact.added_at < anchor.window_start
"""

# Per account: the last health score and the covered tickets in each window.
# Then whether a subscription in the window after, and one in the window
# before, expanded the account. Expanding is an upgrade, or more seats than
# every subscription started before that window.
ACCOUNT_SQL = """
SELECT
    anchor.subject_id,
    anchor.trained,
    (SELECT score FROM customers_healthscore AS health
        WHERE health.account_id = anchor.subject_id
        AND health.scored_on >= anchor.window_start
        AND health.scored_on <= anchor.before_end
        ORDER BY health.scored_on DESC LIMIT 1) AS score_before,
    (SELECT score FROM customers_healthscore AS health
        WHERE health.account_id = anchor.subject_id
        AND health.scored_on > anchor.day
        AND health.scored_on <= anchor.after_end
        ORDER BY health.scored_on DESC LIMIT 1) AS score_after,
    (SELECT COUNT(*) FROM customers_supportticket AS ticket
        WHERE ticket.account_id = anchor.subject_id AND {covered}
        AND ticket.opened_at >= anchor.window_start
        AND ticket.opened_at < anchor.day) AS tickets_before,
    (SELECT COUNT(*) FROM customers_supportticket AS ticket
        WHERE ticket.account_id = anchor.subject_id AND {covered}
        AND ticket.opened_at >= {day_after}
        AND ticket.opened_at < {end_after}) AS tickets_after,
    EXISTS (SELECT 1 FROM customers_subscription AS later
        WHERE later.account_id = anchor.subject_id
        AND later.started_on > anchor.day
        AND later.started_on <= anchor.after_end
        AND (later.is_upgrade OR later.seats > COALESCE(
            (SELECT MAX(earlier.seats) FROM customers_subscription AS earlier
                WHERE earlier.account_id = anchor.subject_id
                AND earlier.started_on <= anchor.day),
            later.seats))) AS expanded_after,
    EXISTS (SELECT 1 FROM customers_subscription AS later
        WHERE later.account_id = anchor.subject_id
        AND later.started_on >= anchor.window_start
        AND later.started_on <= anchor.before_end
        AND (later.is_upgrade OR later.seats > COALESCE(
            (SELECT MAX(earlier.seats) FROM customers_subscription AS earlier
                WHERE earlier.account_id = anchor.subject_id
                AND earlier.started_on < anchor.window_start),
            later.seats))) AS expanded_before,
    anchor.day
FROM ({anchors}) AS anchor
JOIN customers_account AS account
    ON account.id = anchor.subject_id AND account.signup_date <= anchor.window_start
"""

# Tickets of each covered topic per window, grouped by {keys}: the group for
# the table by topic, or each anchor's subject and day for a refresh.
TOPICS_SQL = """
SELECT
    {keys},
    ticket.topic,
    SUM(CASE WHEN ticket.opened_at < anchor.day THEN 1 ELSE 0 END) AS before_count,
    SUM(CASE WHEN ticket.opened_at >= {day_after} THEN 1 ELSE 0 END) AS after_count
FROM ({anchors}) AS anchor
JOIN customers_account AS account
    ON account.id = anchor.subject_id AND account.signup_date <= anchor.window_start
JOIN customers_supportticket AS ticket
    ON ticket.account_id = anchor.subject_id
    AND {covered}
    AND ticket.opened_at >= anchor.window_start
    AND ticket.opened_at < {end_after}
    AND NOT (ticket.opened_at >= anchor.day AND ticket.opened_at < {day_after})
GROUP BY {keys}, ticket.topic
"""


def anchor_table(
    anchors: list[Anchor], days_before: int, days_after: int
) -> tuple[str, list[Any]]:
    """Return the SQL of the anchors' derived table and its parameters.

    Django binds parameters on the client, and psycopg quotes a list element
    by element, which took longer than the query for 5,000 anchors. So the
    anchors go as a few strings, quoted at once.
    """
    windows = {"before": int(days_before), "after": int(days_after)}
    if connection.vendor == "postgresql":
        ids = ",".join(str(anchor.subject_id) for anchor in anchors)
        groups = ",".join("t" if anchor.trained else "f" for anchor in anchors)
        days = ",".join(
            str(anchor.day.toordinal() - EPOCH_ORDINAL) for anchor in anchors
        )
        sql = ANCHORS_POSTGRESQL.format(**windows)
        return sql, [f"{{{ids}}}", f"{{{groups}}}", f"{{{days}}}"]
    rows = [
        [anchor.subject_id, anchor.trained, anchor.day.isoformat()]
        for anchor in anchors
    ]
    return ANCHORS_SQLITE.format(**windows), [json.dumps(rows)]


def instant_sql(column: str, days: int) -> str:
    """Return SQL for 00:00 UTC ``days`` after the date ``column``."""
    if connection.vendor == "postgresql":
        return f"(({column} + {days})::timestamp AT TIME ZONE 'UTC')"
    return f"datetime({column}, '+{days} days')"


def fetch_rows(sql: str, params: list[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# The anchors of a refresh: each subject of one level of the staged training
# facts ({stage}) on each UTC day it first met a rule, once per distinct day.
# A subject has several such days when it met rules on different days.
FACT_ANCHORS_POSTGRESQL = """
SELECT subject_id, TRUE AS trained, day,
    day - {before} AS window_start,
    day - 1 AS before_end,
    day + {after} AS after_end
FROM (
    SELECT DISTINCT subject_id, (first_at AT TIME ZONE 'UTC')::date AS day
    FROM {stage} WHERE level = %s
) AS fact_day
"""

# Django stores an SQLite datetime as UTC text, so date() is its UTC day.
FACT_ANCHORS_SQLITE = """
SELECT subject_id, 1 AS trained, day,
    date(day, '-{before} days') AS window_start,
    date(day, '-1 days') AS before_end,
    date(day, '+{after} days') AS after_end
FROM (
    SELECT DISTINCT subject_id, date(first_at) AS day
    FROM {stage} WHERE level = %s
) AS fact_day
"""

# Each anchor's tickets as {topic: [before, after]}, for every topic, since
# the topics a course covers may change between refreshes.
TOPIC_TICKETS_SQL = """
SELECT subject_id, day, {json_object} AS tickets
FROM ({by_topic}) AS by_topic
GROUP BY subject_id, day
"""

# Copies the staged facts into the table with each one's figures, matched
# on level, subject and UTC day. A subject without figures joined after its
# window before began, so it is not measured and its figures are null.
INSERT_FACTS_SQL = """
INSERT INTO metrics_trainingfact (
    level, subject_id, account_id, rule, course_id, path_id, first_at,
    measured, usage_before, usage_after, health_before, health_after,
    expanded_before, expanded_after, topic_tickets, sample_key)
SELECT stage.level, stage.subject_id, stage.account_id, stage.rule,
    stage.course_id, stage.path_id, stage.first_at,
    usage_figures.subject_id IS NOT NULL OR outcome_figures.subject_id IS NOT NULL,
    usage_figures.before_count, usage_figures.after_count,
    outcome_figures.score_before, outcome_figures.score_after,
    outcome_figures.expanded_before, outcome_figures.expanded_after,
    ticket_figures.tickets, {sample_key}
FROM {stage} AS stage
LEFT JOIN ({usage}) AS usage_figures
    ON stage.level = 'contact'
    AND usage_figures.subject_id = stage.subject_id
    AND usage_figures.day = {stage_day}
LEFT JOIN ({outcomes}) AS outcome_figures
    ON stage.level = 'account'
    AND outcome_figures.subject_id = stage.subject_id
    AND outcome_figures.day = {stage_day}
LEFT JOIN ({tickets}) AS ticket_figures
    ON stage.level = 'account'
    AND ticket_figures.subject_id = stage.subject_id
    AND ticket_figures.day = {stage_day}
"""


def utc_day_sql(column: str) -> str:
    """Return SQL for the UTC day of the datetime ``column``."""
    if connection.vendor == "postgresql":
        return f"({column} AT TIME ZONE 'UTC')::date"
    # Django stores an SQLite datetime as UTC text, so date() is the UTC day.
    return f"date({column})"


def _fact_anchors(
    stage: str, level: str, days_before: int, days_after: int
) -> tuple[str, list[Any]]:
    template = FACT_ANCHORS_SQLITE
    if connection.vendor == "postgresql":
        template = FACT_ANCHORS_POSTGRESQL
    sql = template.format(stage=stage, before=int(days_before), after=int(days_after))
    return sql, [level]


def insert_training_facts(cursor: Any, stage: str) -> None:
    """Insert the staged training facts, each with its subject's outcomes around it.

    ``stage`` is a table with TrainingFact's columns up to first_at. The
    figures come from the request's SQL run over the anchors of every
    staged fact, so a report reads the trained group's figures from the
    facts and measures only the untrained, whose days it draws on each
    request. Contacts get their usage, accounts their health scores,
    expansion and tickets per topic.
    """
    usage_anchors, usage_params = _fact_anchors(
        stage, "contact", DAYS_BEFORE, DAYS_AFTER
    )
    account_anchors, account_params = _fact_anchors(
        stage, "account", ACCOUNT_WINDOW_DAYS, ACCOUNT_WINDOW_DAYS
    )
    fragments = {
        "anchors": account_anchors,
        "day_after": instant_sql("anchor.day", 1),
        "end_after": instant_sql("anchor.after_end", 1),
    }
    by_topic = TOPICS_SQL.format(
        keys="anchor.subject_id, anchor.day", covered="1 = 1", **fragments
    )
    json_object = "json_group_object(topic, json_array(before_count, after_count))"
    if connection.vendor == "postgresql":
        json_object = (
            "jsonb_object_agg(topic, jsonb_build_array(before_count, after_count))"
        )
    sql = INSERT_FACTS_SQL.format(
        stage=stage,
        stage_day=utc_day_sql("stage.first_at"),
        usage=USAGE_SQL.format(anchors=usage_anchors, added_in_time=ADDED_IN_TIME_SQL),
        # The covered tickets are stored per topic, so none count here.
        outcomes=ACCOUNT_SQL.format(covered="1 = 0", **fragments),
        tickets=TOPIC_TICKETS_SQL.format(json_object=json_object, by_topic=by_topic),
        sample_key=hashed_sql("stage.subject_id"),
    )
    cursor.execute(sql, [*usage_params, *account_params, *account_params])
