#!/bin/sh
# policy-check.sh: the checks a change to meshward access policies must pass.
# The GitHub Actions workflow (github-actions.yml) and the pre-commit hook
# (pre-commit) both run this script, so running it locally runs what CI runs.
#
#   1. meshward policy lint  POLICIES                  invalid policy: exit 2
#   2. meshward policy test  POLICIES --junit JUNIT    a failing PolicyTest case: exit 1
#   3. meshward policy diff  BASE:POLICIES POLICIES    access widens: exit 1 unless ALLOW_WIDEN
#
# When lint fails nothing else runs; test and diff both run and the worse
# exit code wins. Parameters, all from the environment:
#
#   POLICIES     policies directory, relative to the current directory inside
#                the git work tree (default: policies)
#   BASE         git revision to compare with, e.g. origin/main; empty: no diff.
#                If POLICIES does not exist at BASE, every grant is new.
#   MESH         mesh.yaml (optional): policy targets must be its services
#   ALLOW_WIDEN  1, true or yes: report a widening but do not fail on it (CI
#                sets it from the pull request's access-widening label)
#   STRICT       1, true or yes: lint warnings fail too (exit 1)
#   JUNIT        JUnit XML file for the test results (default: policy-tests.xml;
#                set it empty for none)
#   MESHWARD     the meshward binary (default: meshward from PATH)
#
# Exit codes are meshward's: 0 ok, 1 failed test or access widens, 2 bad input.
set -eu

POLICIES=${POLICIES:-policies}
BASE=${BASE:-}
MESH=${MESH:-}
ALLOW_WIDEN=${ALLOW_WIDEN:-}
STRICT=${STRICT:-}
JUNIT=${JUNIT-policy-tests.xml}
MESHWARD=${MESHWARD:-meshward}

say() { printf 'policy-check: %s\n' "$*" >&2; }

yes_no() { # NAME VALUE: 0 for yes, 1 for no, exit 2 for anything else
	case $2 in
	1 | true | yes) return 0 ;;
	'' | 0 | false | no) return 1 ;;
	esac
	say "$1 must be 1, true, yes, 0, false, no or empty, got \"$2\""
	exit 2
}

if [ ! -d "$POLICIES" ]; then
	say "POLICIES=$POLICIES is not a directory"
	exit 2
fi

# "$@" holds the flags all three commands share.
set --
if [ -n "$MESH" ]; then
	set -- --mesh "$MESH"
fi

say "lint $POLICIES"
if yes_no STRICT "$STRICT"; then
	"$MESHWARD" policy lint "$POLICIES" "$@" --strict
else
	"$MESHWARD" policy lint "$POLICIES" "$@"
fi

rc=0
worse() { # keep the highest exit code
	if [ "$1" -gt "$rc" ]; then rc=$1; fi
}

say "test $POLICIES${JUNIT:+ (JUnit: $JUNIT)}"
if [ -n "$JUNIT" ]; then
	"$MESHWARD" policy test "$POLICIES" "$@" --junit "$JUNIT" || worse $?
else
	"$MESHWARD" policy test "$POLICIES" "$@" || worse $?
fi

if [ -n "$BASE" ]; then
	if ! git rev-parse --quiet --verify "$BASE^{commit}" >/dev/null; then
		say "BASE=$BASE is not a commit here (in CI, check out with the base branch: actions/checkout fetch-depth: 0)"
		exit 2
	fi
	old=$BASE:$POLICIES
	empty=
	if [ -z "$(git ls-tree "$BASE" -- "$POLICIES")" ]; then
		# New policies: compare with none (default deny), so every grant counts.
		empty=$(mktemp -d)
		trap 'rmdir "$empty"' EXIT
		old=$empty
		say "$POLICIES does not exist at $BASE: every grant is new"
	fi
	if yes_no ALLOW_WIDEN "$ALLOW_WIDEN"; then
		set -- "$@" --allow-widen
	fi
	say "diff $old -> $POLICIES"
	widen=0
	"$MESHWARD" policy diff "$old" "$POLICIES" "$@" || widen=$?
	if [ "$widen" -eq 1 ]; then
		say "access widens (the + lines above). Once a reviewer approved them, set ALLOW_WIDEN=1 (in CI: add the access-widening label to the pull request)"
	fi
	worse "$widen"
fi

if [ "$rc" -eq 0 ]; then
	say "ok"
fi
exit "$rc"
