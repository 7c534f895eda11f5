#!/usr/bin/env bash
# Completes the gate's check run when the review did not: setup failed (actions/setup-python,
# the venv install), the configuration or an input was refused, the review timed out, crashed
# or was cancelled. A required check must never stay "expected" or "in progress", and nothing
# unreviewed may pass: the check is completed as `failure` (`cancelled` for a cancelled run),
# with the reason. Needs nothing but bash, curl and the token, so it works when Python does not.
#
# Input (environment, set by action.yml):
#   GATEBOT_OUTCOME_{PYTHON,INSTALL,PREPARE}  step outcomes (success|failure|cancelled|skipped)
#   GATEBOT_PREPARE_STATUS, GATEBOT_STATUS    exit codes of `gatebot cache-key` / `gatebot review`
#   GATEBOT_VERDICT, GATEBOT_POSTED           the review's own outputs, when it finished
#   GATEBOT_CHECK_RUN_ID                      the check run the review opened, if it did
#   GATEBOT_CANCELLED                         true when the job is being cancelled
#   GATEBOT_HEAD, GATEBOT_PR_HEAD_SHA, GATEBOT_WORKDIR, GATEBOT_CHECK_NAME, GATEBOT_POST_CHECK,
#   GATEBOT_TIMEOUT_MINUTES, GATEBOT_GITHUB_TOKEN, and the runner's GITHUB_* variables.
# Output ($GITHUB_OUTPUT): exit-code (0-3), conclusion, posted (check|commands), reason.
set -euo pipefail

status="${GATEBOT_STATUS:-}"
prepare_status="${GATEBOT_PREPARE_STATUS:-}"
minutes="${GATEBOT_TIMEOUT_MINUTES//[^0-9.]/}"
conclusion=failure
code=3
title=""
reason=""

if [ "${GATEBOT_CANCELLED:-false}" = true ] && [ "$status" != 0 ] && [ "$status" != 1 ]; then
  conclusion=cancelled title="gatebot was cancelled" reason="the workflow run was cancelled"
elif [ "${GATEBOT_OUTCOME_PYTHON:-}" = failure ]; then
  title="gatebot setup failed" reason="setting up Python failed (actions/setup-python)"
elif [ "${GATEBOT_OUTCOME_INSTALL:-}" = failure ]; then
  title="gatebot setup failed" reason="installing gatebot failed (no usable Python, or its dependencies could not be installed)"
elif [ "${GATEBOT_OUTCOME_PREPARE:-}" = failure ] || { [ -n "$prepare_status" ] && [ "$prepare_status" != 0 ]; }; then
  if [ "$prepare_status" = 2 ]; then
    code=2 title="gatebot could not run" reason="a usage or configuration error (exit 2)"
  else
    title="gatebot could not run" reason="preparing the review failed (exit ${prepare_status:-unknown})"
  fi
else
  case "$status" in
    0 | 1) ;;
    "") title="gatebot did not run" reason="the review step did not run" ;;
    124 | 137) title="gatebot did not finish" reason="the review timed out after ${minutes:-?} minutes" ;;
    2) code=2 title="gatebot could not run" reason="a usage or configuration error (exit 2)" ;;
    *) title="gatebot did not finish" reason="the review stopped with an infrastructure error (exit ${status//[^0-9]/})" ;;
  esac
fi

out() {
  if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s=%s\n' "$1" "$2" >> "$GITHUB_OUTPUT"; fi
}

token="${GATEBOT_GITHUB_TOKEN:-}"
if [ -n "$token" ]; then echo "::add-mask::$token"; fi
api_url="${GITHUB_API_URL:-https://api.github.com}"
api_url="${api_url%/}"
repo="${GITHUB_REPOSITORY:-}"
run_id="${GATEBOT_CHECK_RUN_ID:-}"
tmp="$(mktemp -d "${RUNNER_TEMP:-/tmp}/gatebot-close.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
printf 'Authorization: Bearer %s\n' "$token" > "$tmp/auth"
http=000

# One GitHub REST call: the token goes in a header file (never on a command line) and only to
# GITHUB_API_URL (redirects are not followed). Sets $http; the body is in $tmp/response.
api() {
  local method=$1 path=$2
  local args=(--silent --show-error --max-time 20 --retry 2 --retry-delay 1
    --request "$method" --header @"$tmp/auth" --output "$tmp/response" --write-out '%{http_code}'
    --header "Accept: application/vnd.github+json" --header "X-GitHub-Api-Version: 2022-11-28"
    --header "User-Agent: gatebot-action")
  if [ "$method" != GET ]; then
    args+=(--header "Content-Type: application/json" --data-binary @"$tmp/body")
  fi
  http="$(curl "${args[@]}" "$api_url$path")" || http=000
}

# A JSON string literal: backslash, quote and control characters escaped or dropped.
json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/}
  s=${s//$'\t'/ }
  s="$(printf '%s' "$s" | tr -d '\001-\037\177')"
  printf '"%s"' "$s"
}

# The top-level "status" of a check-run object: the only unescaped `"status":` key in it
# (app, check_suite, output and pull_requests carry none; quotes inside strings are escaped).
run_status() {
  grep -o '"status"[[:space:]]*:[[:space:]]*"[a-z_]*"' "$tmp/response" | head -n 1 |
    sed 's/.*"\([a-z_]*\)"$/\1/' || true
}

can_post() {
  [ "${GATEBOT_POST_CHECK:-true}" = true ] && [ -n "$token" ] && command -v curl >/dev/null &&
    [[ "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]]
}

if [ -z "$reason" ]; then
  # The review finished and delivered its verdict. Only if it opened a check run that it then
  # could not complete (the API failed after retries) is there anything left to do here.
  if [ "${GATEBOT_POSTED:-}" != check ] && [[ "$run_id" =~ ^[0-9]+$ ]] && can_post; then
    api GET "/repos/$repo/check-runs/$run_id"
    if [ "$http" = 200 ] && [ "$(run_status)" != completed ]; then
      # As the review decided it: exit 0 passes the check (neutral where the verdict is), 1 not.
      finished=failure
      if [ "$status" = 0 ]; then
        if [ "${GATEBOT_VERDICT:-}" = neutral ]; then finished=neutral; else finished=success; fi
      fi
      printf '{"status":"completed","conclusion":"%s","output":{"title":%s,"summary":%s}}' \
        "$finished" "$(json_str "gatebot: ${GATEBOT_VERDICT:-fail}")" \
        "$(json_str "The review finished with the verdict **${GATEBOT_VERDICT:-fail}**; the full report is in the job summary (the check run could not be updated with it).")" \
        > "$tmp/body"
      api PATCH "/repos/$repo/check-runs/$run_id"
      echo "check run $run_id left open by the review: completed as $finished (HTTP $http)"
      if [ "$http" = 200 ]; then out posted check; fi
    fi
  fi
  exit 0
fi

details=""
if [ -n "$repo" ] && [ -n "${GITHUB_RUN_ID:-}" ]; then
  details="${GITHUB_SERVER_URL:-https://github.com}/$repo/actions/runs/${GITHUB_RUN_ID//[^0-9]/}"
fi
summary="Nothing was reviewed: ${reason}. The change is not passed; see the job log${details:+ ($details)} for the cause, then re-run the job."
echo "::error title=${title}::${reason}; the check is ${conclusion}, nothing was reviewed"

posted=commands
note="The check run was not posted"
if ! can_post; then
  if [ "${GATEBOT_POST_CHECK:-true}" != true ]; then
    note="$note (post-check is off)"
  elif ! command -v curl >/dev/null; then
    note="$note: curl is not installed on this runner"
  else
    note="$note: no token, or no OWNER/NAME repository"
  fi
else
  head_sha=""
  if [ -n "${GATEBOT_HEAD:-}" ]; then
    if [[ "$GATEBOT_HEAD" =~ ^[0-9a-f]{40}([0-9a-f]{24})?$ ]]; then
      head_sha=$GATEBOT_HEAD
    elif command -v git >/dev/null; then
      head_sha="$(git -C "${GATEBOT_WORKDIR:-.}" rev-parse --verify --quiet --end-of-options \
        "${GATEBOT_HEAD}^{commit}" 2>/dev/null || true)"
    fi
  elif [ -n "${GATEBOT_PR_HEAD_SHA:-}" ]; then
    head_sha=$GATEBOT_PR_HEAD_SHA
  elif [ "${GITHUB_EVENT_NAME:-}" != issue_comment ]; then
    # push, workflow_dispatch, merge_group (the group's head): the run's own commit. A PR
    # command (issue_comment) runs on the default branch: its PR's head is not known here
    # unless the review opened the check run, so no check is created on the wrong commit.
    head_sha="${GITHUB_SHA:-}"
  fi
  output="{\"title\":$(json_str "$title"),\"summary\":$(json_str "$summary")}"
  completed_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done_fields="\"status\":\"completed\",\"conclusion\":\"$conclusion\",\"completed_at\":\"$completed_at\",\"output\":$output"
  if [ -n "$details" ]; then done_fields="$done_fields,\"details_url\":$(json_str "$details")"; fi
  action=""
  if [[ "$run_id" =~ ^[0-9]+$ ]]; then
    api GET "/repos/$repo/check-runs/$run_id"
    if [ "$http" = 200 ] && [ "$(run_status)" = completed ]; then
      action=kept posted=check
      echo "check run $run_id was already completed by the review; left as it is"
    elif [ "$http" = 200 ]; then
      printf '{%s}' "$done_fields" > "$tmp/body"
      api PATCH "/repos/$repo/check-runs/$run_id"
      action=completed
    fi
  fi
  if [ -z "$action" ]; then
    if [[ "$head_sha" =~ ^[0-9a-f]{40}([0-9a-f]{24})?$ ]]; then
      printf '{"name":%s,"head_sha":"%s",%s}' "$(json_str "${GATEBOT_CHECK_NAME:-gatebot / review}")" \
        "$head_sha" "$done_fields" > "$tmp/body"
      api POST "/repos/$repo/check-runs"
      action=created
    else
      note="$note: the head commit is unknown"
      action=none
    fi
  fi
  case "$action:$http" in
    completed:200 | created:201)
      posted=check
      echo "check run ${action} as ${conclusion}: ${reason}"
      ;;
    kept:*) ;;
    none:*) echo "::warning title=gatebot::check run not posted: the head commit is unknown" ;;
    *)
      note="$note (HTTP $http)"
      echo "::warning title=gatebot::the check run could not be ${action} (HTTP $http)"
      ;;
  esac
fi

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    printf '## ❌ %s\n\n> %s\n\n' "$title" "$summary"
    if [ "$posted" = check ]; then
      printf 'The check run is completed as `%s`.\n' "$conclusion"
    else
      printf '%s.\n' "$note"
    fi
  } >> "$GITHUB_STEP_SUMMARY"
fi
out exit-code "$code"
out conclusion "$conclusion"
out posted "$posted"
out reason "$reason"
